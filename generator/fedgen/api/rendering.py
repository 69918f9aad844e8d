"""Render a federation into the repository, and remove one from it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from fedgen.certs.offboarding import record_offboarded
from fedgen.certs.redistribution import NOBODY, WhoMustAct, after_removal, after_render
from fedgen.certs.rootguard import committed_roots, require_committed_root
from fedgen.errors import InputError
from fedgen.ledger import Contribution, Ledger, read_ledgers
from fedgen.render.layout import server_base_dir
from fedgen.render.platform_fit import platform_warnings
from fedgen.render.pod import KIT_DIGEST
from fedgen.render.shared import contributions, recorded_shared_files, shared_files
from fedgen.render.site import site_dir
from fedgen.render.tree import RenderInput, owned_folders, render_tree, secrets_to_seal
from fedgen.seal.manifest import read_encrypted_data
from fedgen.seal.policy import CertificateChange, seal_all
from fedgen.spec import Federation, load_federation
from fedgen.spec.sealing_certificate import parse_fingerprint
from fedgen.state import Backup, StateDocument, federation_store, open_store
from fedgen.write import Plan, RenderedFiles, apply_plan_locked, make_plan, preflight, recover, removal_plan, require_rendered, writing


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
    who_must_act: WhoMustAct = NOBODY  # (check: what a render would require)


@dataclass(frozen=True)
class RemoveResult:
    plan: Plan
    backup: Backup | None = None  # the copy of the federation's state made before anything was removed
    who_must_act: WhoMustAct = NOBODY  # every participant removed; the certificates that stay valid
    state: str | None = None  # the state's location (left in place)


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
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Provision from the state, render the tree, and (unless check) save the state and write the tree.

    reissue names participants whose key and certificate are made anew (rotation); new_root_ca starts a
    new CA, which re-issues every certificate. Without new_root_ca, a state whose root CA is missing or differs
    from the one the committed federation trusts is an InputError (fedgen.certs.rootguard), raised before
    anything is locked or written; with it, the state document is first copied beside itself
    (RenderResult.backup, under the lock, before anything changes). accept_sealing_certs: fingerprints
    (SHA256:AA:...) of sealing certificates the state does not record yet that this render may seal to.

    check is read-only: it creates nothing (no state folder, no lock, no .fedgen folder), takes no lock (a
    read-only credential to a gs:// state is enough) and never seals to a certificate the state does not
    trust: such clusters come back in sealing_changes.

    RenderResult.who_must_act says which participants need a new kit and why, who is new, who was removed and
    which removed participants still hold valid certificates (fedgen.certs.redistribution). progress(done,
    total) is called while certificates are issued (fedgen.provision.provision).
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
    mine = contributions(fed, spec_name)
    # The repo's records, read once before the state is locked: forged records, hand edits and links stop the
    # render here (the plan checks again, under the repo's write lock), and they name the root CA it trusts.
    ledgers, recorded = _read_records(repo)
    preflight(repo, fed.name, ledgers, recorded, [*owned_folders(fed), *shared_files(mine)])
    store = federation_store(fed, state, repo)
    committed = {} if new_root_ca else committed_roots(repo, fed, ledgers.get(fed.name))

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
        result = provision(fed.provisioned, _forget_certificates(document, reissue, new_root_ca), kits_for=kits_for, progress=progress)
        kits = {name: {path: f.data for path, f in kit.items()} for name, kit in result.kits.items()}
        secrets = secrets_to_seal(fed, kits)
        # Read once, here (under the state lock when writing): ciphertext a render of this state committed
        # meanwhile is kept, not sealed again.
        committed_ciphertext = {s.repo_path: read_encrypted_data(repo / s.repo_path) for s in secrets}
        provisioned = record_offboarded(fed, document, replace(result.document, project=fed.name))
        sealed = seal_all(provisioned, secrets, previous=committed_ciphertext, accepted=accepted)
        if sealed.untrusted and not check:
            raise InputError(_untrusted_message(sealed.untrusted))
        new_doc, warnings = replace(sealed.document, server={"external_address": fed.server.external_address}), sealed.warnings
        owned = render_tree(RenderInput(federation=fed, spec_name=spec_name, kits=kits, sealed=sealed.encrypted))
        if not fed.server.load_balancer_source_ranges:
            warnings.append("server.loadBalancerSourceRanges is empty: the NVFlare ports are open to any address")
        warnings.extend(platform_warnings(fed))
        if check:
            plan = _plan(repo, fed, spec_name, owned, mine, ledgers, recorded)
            who = _who_must_act(fed, document, new_doc, result.issued, plan)
            return RenderResult(fed, plan, result.issued, tuple(warnings), False, tuple(notes), sealed.untrusted, who_must_act=who)
        # The plan takes every federation's ledger (shared files): read again, the plan made and written under
        # the repo's write lock, so another federation's render into this repo cannot change a ledger in between.
        with writing(repo):
            plan = _plan(repo, fed, spec_name, owned, mine, *_read_records(repo))
            if new_doc.to_bytes() != document.to_bytes():
                store.save(new_doc)
            apply_plan_locked(repo, plan)
    who = _who_must_act(fed, document, new_doc, result.issued, plan)
    return RenderResult(fed, plan, result.issued, tuple(warnings), not plan.is_noop, tuple(notes), backup=backup, who_must_act=who)


def _who_must_act(fed: Federation, before: StateDocument, after: StateDocument, issued: Collection[str], plan: Plan) -> WhoMustAct:
    return after_render(fed, before, after, issued, rolled=_rolled_workloads(fed, plan), now=datetime.now(timezone.utc))


def _rolled_workloads(fed: Federation, plan: Plan) -> set[str]:
    """The server and sites on their own clusters whose Deployment the plan moves to another kit digest (the
    pod template's annotation), so the GitOps engine restarts them."""
    workloads = {f"{server_base_dir(fed)}/deployment.yaml": fed.server.name}
    workloads.update({f"{site_dir(s)}/deployment.yaml": s.name for s in fed.cluster_sites})
    digest = re.compile(rb"^\s*" + re.escape(KIT_DIGEST.encode()) + rb":\s*['\"]?([0-9a-f]+)", re.MULTILINE)

    def kit_digest(deployment: bytes) -> bytes | None:
        found = digest.search(deployment)
        return found.group(1) if found else None

    return {
        workloads[c.path] for c in plan.changes if c.path in workloads and c.old is not None and c.new is not None and kit_digest(c.old) != kit_digest(c.new)
    }


def _untrusted_message(changes: Collection[CertificateChange]) -> str:
    accept = " ".join(sorted({f"--accept-sealing-cert {c.new}" for c in changes}))
    return (
        f"{'; '.join(c.describe() for c in changes)}; nothing was sealed or written. If the cluster's controller "
        f"really has this certificate (`kubeseal --fetch-cert | openssl x509 -noout -fingerprint -sha256`), render with {accept}"
    )


def _read_records(repo: Path) -> tuple[dict[str, Ledger], dict[str, bytes]]:
    """Every federation's ledger, and the shared files their recorded contributions make."""
    ledgers = read_ledgers(repo)
    return ledgers, recorded_shared_files(ledgers)


def _plan(
    repo: Path, fed: Federation, spec_name: str, owned: dict[str, bytes], mine: list[Contribution], ledgers: dict[str, Ledger], recorded: dict[str, bytes]
) -> Plan:
    shared = recorded_shared_files(ledgers, but=fed.name, adding=mine)
    return make_plan(repo, RenderedFiles(fed.name, spec_name, owned, tuple(mine), shared), ledgers, recorded)


def remove(*, federation: str, repo: Path, check: bool = False, state: str | None = None) -> RemoveResult:
    """Delete a federation's files from the repo and recompute the files it shared with others.

    Needs neither its spec nor its state: the ledger records what it owns and contributed. The state
    (`state`, default <repo>/.fedgen/state/<federation>) is left alone (delete it yourself once you are
    sure), but first copied beside itself (RemoveResult.backup) before anything is removed. It is read for
    RemoveResult.who_must_act: the federation's participants, and which of their certificates stay valid.
    """
    repo = repo.resolve()
    store = open_store(state, repo, federation)
    if check:
        plan = _removal_plan(repo, federation)
        return RemoveResult(plan, who_must_act=after_removal(store.load(), now=datetime.now(timezone.utc)), state=store.description)
    recover(repo)
    with writing(repo):  # as in render: the plan reads every ledger
        plan = _removal_plan(repo, federation)
        document = store.load()
        backup = store.backup()
        apply_plan_locked(repo, plan)
    return RemoveResult(plan, backup, after_removal(document, now=datetime.now(timezone.utc)), store.description)


def _removal_plan(repo: Path, federation: str) -> Plan:
    ledgers = read_ledgers(repo)
    require_rendered(repo, federation, ledgers)  # an unknown federation is said before any record is judged
    return removal_plan(repo, federation, ledgers, recorded_shared_files(ledgers), recorded_shared_files(ledgers, but=federation))


def _forget_certificates(document: StateDocument, names: Collection[str], new_root_ca: bool) -> StateDocument:
    """Provisioning re-issues any participant without an issuance record; a new CA needs an empty cert store."""
    if new_root_ca:
        return replace(document, nvflare_cert={}, participants={})
    return replace(document, participants={k: v for k, v in document.participants.items() if k not in names})
