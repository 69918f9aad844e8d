"""Render a federation into the repository, and remove one from it."""

from __future__ import annotations

import os
from collections.abc import Collection
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from fedgen.errors import InputError
from fedgen.render.platform_fit import platform_warnings
from fedgen.render.shared import contributions, shared_files
from fedgen.render.tree import RenderInput, owned_folders, render_tree, sealed_keys
from fedgen.seal import parse_fingerprint
from fedgen.sealing import CertificateChange, SecretToSeal, seal_all
from fedgen.spec import Federation, load_federation
from fedgen.rootguard import committed_roots, require_committed_root
from fedgen.state import Backup, StateDocument, federation_store, open_store
from fedgen.write import Plan, apply_plan_locked, make_plan, preflight, recover, removal_plan, writing

@dataclass(frozen=True)
class RenderResult:
    federation: Federation
    plan: Plan
    issued: tuple[str, ...]
    warnings: tuple[str, ...]
    written: bool
    notes: tuple[str, ...] = ()
    # Clusters whose spec names a sealing certificate the state does not trust (--check only: a render refuses).
    sealing_changes: tuple[CertificateChange, ...] = ()
    backup: Backup | None = None  # new_root_ca: the copy of the state made before the old CA was dropped


@dataclass(frozen=True)
class RemoveResult:
    plan: Plan
    backup: Backup | None = None  # the copy of the federation's state made before anything was removed


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
    accept_sealing_certs: Collection[str] = (),
) -> RenderResult:
    """Provision from the state, render the tree, and (unless check) save the state and write the tree.

    reissue names participants whose key and certificate are made anew (rotation); new_root_ca starts a
    new CA, which re-issues every certificate. Without new_root_ca, a state whose root CA is missing or differs
    from the one the committed federation trusts is an InputError (fedgen.rootguard), raised before anything
    is locked or written; with it, the state document is first copied beside itself (RenderResult.backup,
    under the lock, before anything changes). accept_sealing_certs: fingerprints (SHA256:AA:...) of sealing
    certificates the state does not record yet that this render may seal to.

    check is read-only: it creates nothing (no state folder, no lock, no .fedgen folder), takes no lock (a
    read-only credential to a gs:// state is enough) and never seals to a certificate the state does not
    trust: such clusters come back in sealing_changes.
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
    known = fed.provisioned.participant_names
    unknown = sorted(set(reissue) - set(known))
    if unknown:
        raise InputError(f"not a participant fedgen issues keys for in {fed.name}: {', '.join(unknown)} (known: {', '.join(known)})")
    if check and accept_sealing_certs:
        raise InputError("--accept-sealing-cert is for a render that writes; --check never seals to a certificate the state does not record")
    accepted = {parse_fingerprint(f) for f in accept_sealing_certs}
    spec_name = spec_name_in_repo(spec, repo)
    # Forged records, hand edits and links stop the render before the state is even locked (the plan checks again).
    preflight(repo, fed.name, [*owned_folders(fed), *shared_files(contributions(fed, spec_name))])
    store = federation_store(fed, state, repo)
    committed = {} if new_root_ca else committed_roots(repo, fed)

    def load() -> StateDocument:
        document = store.load()
        document.require_project(fed.name, store.description)
        require_committed_root(committed, document, store.description, federation=fed.name, spec=spec)
        return document

    if not check:
        load()  # refuse a wrong state before the lock, which would create a mistyped state folder
    with nullcontext() if check else store.lock():
        document = load()  # (again, under the lock: the state may have changed before it was ours)
        backup = store.backup() if new_root_ca and not check else None
        kits_for = [fed.server.name, *(s.name for s in fed.cluster_sites)]
        result = provision(fed.provisioned, _forget_certificates(document, reissue, new_root_ca), kits_for=kits_for)
        kits = {name: {path: f.data for path, f in kit.items()} for name, kit in result.kits.items()}
        sealed = seal_all(repo, replace(result.document, project=fed.name), _secrets(fed, kits), accepted=accepted)
        if sealed.untrusted and not check:
            raise InputError(_untrusted_message(sealed.untrusted))
        new_doc, warnings = sealed.document, sealed.warnings
        files = render_tree(RenderInput(federation=fed, spec_name=spec_name, kits=kits, sealed=sealed.encrypted))
        if not fed.server.load_balancer_source_ranges:
            warnings.append("server.loadBalancerSourceRanges is empty: the NVFlare ports are open to any address")
        warnings.extend(platform_warnings(fed))
        if check:
            return RenderResult(fed, _plan(repo, fed, spec_name, files), result.issued, tuple(warnings), False, tuple(notes), sealed.untrusted)
        # The plan reads every federation's ledger (shared files): made and written under the repo's write
        # lock, so another federation's render into this repo cannot change a ledger in between.
        with writing(repo):
            plan = _plan(repo, fed, spec_name, files)
            if new_doc.to_bytes() != document.to_bytes():
                store.save(new_doc)
            apply_plan_locked(repo, plan)
    return RenderResult(fed, plan, result.issued, tuple(warnings), not plan.is_noop, tuple(notes), backup=backup)


def _untrusted_message(changes: Collection[CertificateChange]) -> str:
    accept = " ".join(sorted({f"--accept-sealing-cert {c.new}" for c in changes}))
    return (
        f"{'; '.join(c.describe() for c in changes)}; nothing was sealed or written. If the cluster's controller "
        f"really has this certificate (`kubeseal --fetch-cert | openssl x509 -noout -fingerprint -sha256`), render with {accept}"
    )


def _plan(repo: Path, fed: Federation, spec_name: str, files: dict[str, bytes]) -> Plan:
    return make_plan(repo, fed.name, spec_name, files, contributions(fed, spec_name))


def remove(*, federation: str, repo: Path, check: bool = False, state: str | None = None) -> RemoveResult:
    """Delete a federation's files from the repo and recompute the files it shared with others.

    Needs neither its spec nor its state: the ledger records what it owns and contributed. The state
    (`state`, default <repo>/.fedgen/state/<federation>) is left alone (delete it yourself once you are
    sure), but first copied beside itself (RemoveResult.backup) before anything is removed.
    """
    repo = repo.resolve()
    if check:
        return RemoveResult(removal_plan(repo, federation))
    recover(repo)
    with writing(repo):  # as in render: the plan reads every ledger
        plan = removal_plan(repo, federation)
        backup = open_store(state, repo, federation).backup()
        apply_plan_locked(repo, plan)
    return RemoveResult(plan, backup)


def _forget_certificates(document: StateDocument, names: Collection[str], new_root_ca: bool) -> StateDocument:
    """Provisioning re-issues any participant without an issuance record; a new CA needs an empty cert store."""
    if new_root_ca:
        return replace(document, nvflare_cert={}, participants={})
    return replace(document, participants={k: v for k, v in document.participants.items() if k not in names})


def _secrets(fed: Federation, kits: dict[str, dict[str, bytes]]) -> list[SecretToSeal]:
    return [
        SecretToSeal(
            namespace=k.namespace,
            name=k.name,
            data={k.key: kits[k.participant][k.kit_path]},
            certificate=k.certificate,
            cluster=k.cluster,
            scope=fed.sealing.scope,
            repo_path=k.repo_path,
        )
        for k in sealed_keys(fed)
    ]
