"""Collecting the Model the rules read (validate/model.py) from a repository under validation.

files.py       every file: keys, text, YAML/JSON documents
ledgers.py     the ledgers (fedgen.ledger) with the repo's digests of what they name
specs.py       the specs the ledgers name, loaded without reading outside the repo
kustomize.py   kubectl kustomize on one folder, sandboxed
syncroots.py   the sync roots and bootstrap folders, objects mapped to their source
schemas.py     kubeconform's verdicts, in the background
enrollment.py  the files under enrollment/
collector.py   all of it in order, overlapped for speed (ModelCollector, collect_model)
"""
