"""The library API behind the CLI: keyword-only functions that return data and never print."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.render.layout import key_secret_name
from fedgen.render.shared import contribution
from fedgen.render.tree import RenderInput, render_tree, sealed_secret_path
from fedgen.spec import Federation, load_federation
from fedgen.state import StateDocument, open_store
from fedgen.write import Plan, apply_plan, make_plan, recover, removal_plan

DEV_SEALING_WARNING = (
    "no sealing certificate in the spec: sealed with a development key kept in the state, which no cluster "
    "can unseal. Fetch the controller's certificate with `kubeseal --fetch-cert > keys/sealed-secrets.pem` "
    "and set spec.sealing.certificate"
)


@dataclass(frozen=True)
class RenderResult:
    federation: Federation
    plan: Plan
    issued: tuple[str, ...]
    warnings: tuple[str, ...]
    written: bool
    notes: tuple[str, ...] = ()


def spec_name_in_repo(spec: Path, repo: Path) -> str:
    return Path(os.path.relpath(spec.resolve(), repo.resolve())).as_posix()


def render(
    *,
    spec: Path,
    repo: Path,
    state: str | None = None,
    check: bool = False,
    reissue: Collection[str] = (),
    new_root_ca: bool = False,
) -> RenderResult:
    """Provision from the state, render the tree, and (unless check) save the state and write the tree.

    reissue names participants whose key and certificate are made anew (rotation); new_root_ca starts a
    new CA, which re-issues every certificate.
    """
    from fedgen.provision import provision

    repo = repo.resolve()
    if not repo.is_dir():
        raise InputError(f"{repo}: --repo is not a folder")
    notes: list[str] = []
    if not check:
        done = recover(repo)
        if done:
            notes.append(done)
    fed = load_federation(spec)
    unknown = sorted(set(reissue) - set(fed.participant_names))
    if unknown:
        raise InputError(f"not a participant of {fed.name}: {', '.join(unknown)} (known: {', '.join(fed.participant_names)})")
    spec_name = spec_name_in_repo(spec, repo)
    store = open_store(state, repo, fed.name)
    with store.lock():
        document = store.load()
        if document.project not in (None, fed.name):
            raise InputError(f"state {store.description} belongs to federation {document.project!r}, not {fed.name!r}; pass --state for this one")
        result = provision(fed, _forget_certificates(document, reissue, new_root_ca), kits_for=[fed.server.name])
        new_doc = replace(result.document, project=fed.name)
        warnings: list[str] = []
        server_kit = {path: f.data for path, f in result.kits[fed.server.name].items()}
        encrypted, new_doc = _seal_server_key(fed, repo, new_doc, server_kit["startup/server.key"], warnings)
        files = render_tree(
            RenderInput(
                federation=fed,
                spec_name=spec_name,
                server_kit=server_kit,
                sealed_key=encrypted,
                sealing_scope=fed.sealing.scope,
            )
        )
        if not fed.server.load_balancer_source_ranges:
            warnings.append("server.loadBalancerSourceRanges is empty: the NVFlare ports are open to any address")
        plan = make_plan(repo, fed.name, spec_name, files, contribution(fed, spec_name))
        written = False
        if not check:
            if new_doc.to_bytes() != document.to_bytes():
                store.save(new_doc)
            apply_plan(repo, plan)
            written = not plan.is_noop
    return RenderResult(fed, plan, result.issued, tuple(warnings), written, tuple(notes))


def remove(*, federation: str, repo: Path, check: bool = False) -> Plan:
    """Delete a federation's files from the repo and recompute the files it shared with others.

    Needs neither its spec nor its state: the ledger records what it owns and contributed. The state is
    left alone (delete it yourself once you are sure).
    """
    repo = repo.resolve()
    if not check:
        recover(repo)
    plan = removal_plan(repo, federation)
    if not check:
        apply_plan(repo, plan)
    return plan


def _forget_certificates(document: StateDocument, names: Collection[str], new_root_ca: bool) -> StateDocument:
    """Provisioning re-issues any participant without an issuance record; a new CA needs an empty cert store."""
    if new_root_ca:
        return replace(document, nvflare_cert={}, participants={})
    return replace(document, participants={k: v for k, v in document.participants.items() if k not in names})


def sealing_certificate(fed: Federation, document: StateDocument, warnings: list[str]) -> tuple[Any, StateDocument]:
    """The controller's certificate from the spec, or the development pair kept in the state."""
    from fedgen.seal import generate_development_keypair, load_certificate

    if fed.sealing.certificate is not None:
        pem = fed.sealing.certificate.read_bytes()
        return load_certificate(pem, origin=str(fed.sealing.certificate)), document
    warnings.append(DEV_SEALING_WARNING)
    if "certificate" not in document.sealing:
        key_pem, cert_pem = generate_development_keypair()
        document = replace(document, sealing={"private_key": key_pem.decode(), "certificate": cert_pem.decode()})
    return load_certificate(document.sealing["certificate"].encode(), origin="development sealing certificate"), document


def _previous_encrypted(repo: Path, path: str) -> dict[str, str]:
    """encryptedData of the SealedSecret currently in the repo (empty when absent or unreadable)."""
    from ruamel.yaml import YAML

    full = repo / path
    if not full.is_file():
        return {}
    try:
        for doc in YAML(typ="safe", pure=True).load_all(full.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SealedSecret":
                data = doc.get("spec", {}).get("encryptedData", {})
                return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except Exception:  # an unreadable file is simply re-sealed
        return {}
    return {}


def _seal_server_key(fed: Federation, repo: Path, document: StateDocument, key: bytes, warnings: list[str]) -> tuple[dict[str, str], StateDocument]:
    from fedgen.seal import seal_data

    cert, document = sealing_certificate(fed, document, warnings)
    namespace, name = fed.server.tenant, key_secret_name(fed)
    prefix = f"{namespace}/{name}/"
    records = {k[len(prefix) :]: v for k, v in document.sealed.items() if k.startswith(prefix)}
    encrypted, new_records = seal_data(
        cert,
        {"server.key": key},
        namespace=namespace,
        name=name,
        scope=fed.sealing.scope,
        previous=_previous_encrypted(repo, sealed_secret_path(fed)),
        records=records,
    )
    # Only the current server key is sealed: records of a renamed tenant or server go away with it.
    sealed = {prefix + k: dict(v) for k, v in sorted(new_records.items())}
    return encrypted, replace(document, sealed=sealed)
