"""Provision a federation with NVFlare's library, keeping NVFlare's certificate state in the state document.

One call: the re-issue policy (fedgen.provision.policy) decides who keeps a certificate and who gets a new
one; when nothing is issued and every kit asked for is recorded in the state with the same inputs, those kits
are returned without running NVFlare (fedgen.provision.kitcache); otherwise new certificates are issued, in
worker processes when there are many (fedgen.provision.runner), and the kits asked for are built by NVFlare
(fedgen.provision.lighter) from a seed in which every participant of the project already has its entry, so
kits are a function of the resulting state alone, byte for byte, however the certificates were issued
(tested).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError
from fedgen.provision import lighter, policy, runner
from fedgen.provision.kit import Kit
from fedgen.provision.kitcache import cached_kit, kit_key, kit_record
from fedgen.provision.roster import ROOT_CERT, ROOT_KEYS, ROOT_PRI_KEY, Roster, is_entry
from fedgen.state.document import StateDocument

if TYPE_CHECKING:
    from fedgen.spec.model import Federation


@dataclass(frozen=True)
class ProvisionResult:
    """What a provisioning run produced."""

    # participant name -> {"startup/fed_server.json": KitFile, "local/...": ..., "readme.txt": ...},
    # only for the participants asked for
    kits: Mapping[str, Kit]
    # the new state (a new object; the input document is not mutated)
    document: StateDocument
    # sorted names whose certificate was (re)issued by this call
    issued: tuple[str, ...]


def provision(
    federation: Federation,
    document: StateDocument,
    *,
    kits_for: Iterable[str] | None = None,
    workers: int | None = None,
    progress: runner.Progress | None = None,
) -> ProvisionResult:
    """Issue the certificates the federation needs; render the kits of `kits_for` (None: every participant).

    Every participant of the spec has a certificate in the returned document, whether or not its kit was
    asked for. `workers`: processes issuing new certificates (None: automatic, see fedgen.provision.runner;
    1: all in this process). `progress(done, total)`: called as new certificates are issued (total: how many
    this call issues; first (0, total), last (total, total)); never called when none is. Raises InputError for
    unusable input (unknown names in kits_for, a state document of another project or without the root CA
    key, a bad worker count) and ExternalError when NVFlare fails.
    """
    plan = policy.plan(federation, document, kits_for)
    roster = Roster.of(federation)
    names = plan.names
    old_cert = document.nvflare_cert

    if not plan.to_issue:  # every certificate is reused: the kits may be in the state already (kitcache)
        cached = {n: cached_kit(document.kits.get(n), kit_key(roster, n, old_cert)) for n in names if n in plan.wanted}
        recorded = {n: kit for n, kit in cached.items() if kit is not None}
        if len(recorded) == len(cached):
            kept = {k: old_cert[k] for k in ROOT_KEYS} | {n: copy.deepcopy(old_cert[n]) for n in names}
            return ProvisionResult(kits=MappingProxyType(recorded), document=_new_document(federation, document, kept, plan, roster, recorded), issued=())

    seed, in_project = plan.seed, plan.in_project
    total = len(plan.to_issue)
    count = runner.worker_count(workers, len([n for n in plan.to_issue if n != plan.server]))
    if count > 1:
        # Issue every new certificate first (in parallel); then the kit run below issues nothing and needs
        # only the server and the kits asked for.
        seed = runner.issue_in_parallel(roster, seed, list(plan.to_issue), count, progress)
        in_project = [n for n in names if n == plan.server or n in plan.wanted]
    elif progress is not None and total:
        progress(0, total)
    given = {n: seed[n] for n in in_project if n in seed}
    project_seed = {k: seed[k] for k in ROOT_KEYS if k in seed} | given

    new_cert, kits = lighter.run(roster, in_project, project_seed, [n for n in names if n in plan.wanted])
    if count <= 1 and progress is not None and total:
        progress(total, total)

    for name in in_project:
        if not is_entry(new_cert.get(name)):
            raise ExternalError(f"{lighter.FAILED}: no certificate for {name} in cert.json")
        if name in given and new_cert[name] != given[name]:
            raise ExternalError(f"{lighter.FAILED}: the certificate of {name} changed unexpectedly")
    if not new_cert.get(ROOT_CERT) or not new_cert.get(ROOT_PRI_KEY):
        raise ExternalError(f"{lighter.FAILED}: no root CA in cert.json")
    if ROOT_CERT in project_seed and new_cert[ROOT_CERT] != project_seed[ROOT_CERT]:
        raise ExternalError(f"{lighter.FAILED}: the root CA changed unexpectedly")

    merged: dict[str, Any] = {ROOT_CERT: new_cert[ROOT_CERT], ROOT_PRI_KEY: new_cert[ROOT_PRI_KEY]}
    for name in names:
        # Entries of participants left out of the kit run come from the seed: the input's or just issued.
        merged[name] = copy.deepcopy(new_cert[name] if name in in_project else seed[name])

    return ProvisionResult(kits=MappingProxyType(kits), document=_new_document(federation, document, merged, plan, roster, kits), issued=plan.issued)


def _new_document(
    federation: Federation,
    document: StateDocument,
    merged: dict[str, Any],
    plan: policy.Issuance,
    roster: Roster,
    kits: Mapping[str, Kit],
) -> StateDocument:
    """The state after provisioning: the merged cert.json, the issuance records, the kits just built (and
    nothing of kits not asked for), everything else of the input carried over."""
    # Every field provisioning does not own (sealing, enrollment, ...) is carried over as it was.
    carried = copy.deepcopy(dataclasses.replace(document, nvflare_cert={}, participants={}, kits={}))
    return dataclasses.replace(
        carried,
        project=federation.name,
        nvflare_cert=merged,
        participants=copy.deepcopy(plan.records),
        kits={name: kit_record(kit_key(roster, name, merged), kit) for name, kit in sorted(kits.items())},
    )
