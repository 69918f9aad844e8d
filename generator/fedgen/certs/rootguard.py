"""No new root CA behind the operator's back.

A render from a state without a root CA mints one, and from a state with another root signs with that one;
either way the rendered server kit changes its rootCA.pem and every site's kit stops working. When the state
was lost or --state mistyped, that is never what the operator wanted. So before provisioning, the root of
the state is compared with the root the repository already trusts: rootCA.pem of every ConfigMap among the
federation's rendered files (its ledger, .fedgen/owned/<federation>.json, plus the server kit's path under
the current spec). A missing or different root is an InputError naming both fingerprints and the way out;
`--new-root-ca` (and `fedgen rotate --root-ca`) start over deliberately.

The repository may be hostile (a PR can edit the ledger): only paths fedgen may touch are read
(fedgen.ledger.guard: relative, inside the output folders, no symbolic link on the way), plain files of at
most MAX_BYTES each. The worst a forged file can do
is make this check refuse a render, never steer where a key goes.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from fedgen.enroll.fingerprints import fingerprint
from fedgen.enroll.rootca import ROOTCA_ITEM, configmap_path, from_document
from fedgen.errors import InputError
from fedgen.ledger import Ledger
from fedgen.ledger.guard import path_problem, refuse_symlinks
from fedgen.spec.model import Federation
from fedgen.state.document import StateDocument

# Kubernetes caps a ConfigMap at 1 MiB; a file of several of them stays well below this.
MAX_BYTES = 8 * 1024 * 1024
_CONFIGMAPS = "configmaps.yaml"


def committed_roots(repo: Path, fed: Federation, ledger: Ledger | None) -> dict[str, str]:
    """fingerprint -> repo path of the first committed file whose ConfigMap carries that rootCA.pem.

    ledger: the federation's (read and checked by fedgen.ledger.read_ledgers), when it has one."""
    candidates = {configmap_path(fed)}
    if ledger:
        candidates |= {p for p in ledger.files if p.rsplit("/", 1)[-1] == _CONFIGMAPS}
    found: dict[str, str] = {}
    for rel in sorted(candidates):
        data = _read_plain(repo, rel)
        if data is None:
            continue
        for pem in _root_pems(data):
            try:
                found.setdefault(fingerprint(pem), rel)
            except ValueError:
                continue  # not a certificate: no evidence of a root
    return found


def require_committed_root(committed: dict[str, str], document: StateDocument, where: str, *, federation: str, spec: Path) -> None:
    """InputError when the repo's rendered federation (`committed`, from committed_roots) trusts a root CA
    the state does not hold."""
    if not committed:
        return  # nothing rendered yet: a first render makes the root
    state_pem = from_document(document, f"state {where}")
    state_fp = fingerprint(state_pem) if state_pem is not None else None
    if state_fp in committed:
        return
    trusted = ", ".join(f"{fp} in {rel}" for fp, rel in sorted(committed.items(), key=lambda item: item[1]))
    has = f"holds another root CA ({state_fp}) than the one" if state_fp else "holds no root CA, but"
    raise InputError(
        f"state {where} {has} the committed federation {federation} trusts ({trusted}); a render "
        "would break every site's kit. Point --state at the federation's state (or restore it from a backup), or, "
        f"to start over on purpose and hand every site and admin a new bundle, run `fedgen render {shlex.quote(str(spec))} --new-root-ca`"
    )


def _read_plain(repo: Path, rel: str) -> bytes | None:
    """The bytes of repo/rel when fedgen may read it (fedgen.ledger.guard) and it is a plain file."""
    if path_problem(rel) is not None:
        return None
    try:
        refuse_symlinks(repo, rel)
        st = os.lstat(repo / rel)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        return (repo / rel).read_bytes()
    except (InputError, OSError):
        return None


def _root_pems(data: bytes) -> list[bytes]:
    """rootCA.pem of every ConfigMap in a YAML stream; nothing when the stream does not parse."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        docs = list(YAML(typ="safe", pure=True).load_all(data))
    except (YAMLError, RecursionError, UnicodeDecodeError, ValueError):
        return []
    pems = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and isinstance(doc.get("data"), dict):
            pem = doc["data"].get(ROOTCA_ITEM)
            if isinstance(pem, str) and pem:
                pems.append(pem.encode())
    return pems
