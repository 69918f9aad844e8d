"""Who must act after a change: the participants whose kit changed, why, and how each gets the new one.

A participant's kit changes when its own certificate is re-issued (rotation, a new role or org, the server's
host names), when the root CA changes (every kit trusts exactly one), and when the server's address in its
NVFlare configuration changes: fed_client.json dials `<default host>:<fl port>` and expects the server's name as
the certificate CN, fed_admin.json dials `<default host>` on the admin port (server_fields, checked against
NVFlare's own kits by the tests). The state before and after a render holds everything needed: the root CA,
who had a certificate, and the server's address (its host names record, its kit's fed_server.json). Pure.

How each participant gets its new kit (Recipient.action):
    bundle      a site with a bundle, or an admin: `fedgen client-bundle NAME`, sent to it
    commit      the server, a site on its own cluster: commit and push; the GitOps engine rolls the workload
    approve     a site enrolling by request, after a new root CA: approve its request again; it re-packages
    enroll-kit  a site enrolling by request that has no certificate yet, or whose kit dials an old address:
                `fedgen enroll kit NAME`, then request (again) and approve
    package     a site whose request was just approved: it pulls the signed zip and runs `nvflare package`
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from cryptography import x509

from fedgen.certs.lifecycle import issued_by
from fedgen.certs.offboarding import ROOT_CERT, RootRotationPlan, StillValid, certificate_of, known_participants, root_rotation_plan, still_valid
from fedgen.spec.model import Federation
from fedgen.state import StateDocument

# Why a participant must act (Reason.reason), in the order they are reported.
NEW_PARTICIPANT = "new-participant"
NOT_ENROLLED = "not-enrolled"  # a site enrolling by request that has no certificate (yet)
ROOT_CA = "root-ca"
OWN_CERTIFICATE = "own-certificate"
SERVER_NAME = "server-name"
HOST_NAME = "host-name"
PORT = "port"
KIT_CHANGED = "kit-changed"  # the server or a site on its own cluster: another part of its kit changed
REASONS = (NEW_PARTICIPANT, NOT_ENROLLED, ROOT_CA, OWN_CERTIFICATE, SERVER_NAME, HOST_NAME, PORT, KIT_CHANGED)
ACTIONS = ("bundle", "commit", "approve", "enroll-kit", "package")


@dataclass(frozen=True)
class FieldChange:
    file: str  # the kit file, e.g. startup/fed_client.json
    field: str  # where in it, e.g. servers[0].service.target
    old: str
    new: str


@dataclass(frozen=True)
class Reason:
    reason: str  # one of REASONS
    old: str | None = None  # server-name, host-name, port: the value before
    new: str | None = None  # and after
    fields: tuple[FieldChange, ...] = ()  # the kit fields it changed


@dataclass(frozen=True)
class Recipient:
    name: str
    kind: str  # server | client | admin
    action: str  # one of ACTIONS
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Participant:
    name: str
    kind: str  # server | client | admin


@dataclass(frozen=True)
class WhoMustAct:
    must_act: tuple[Recipient, ...]  # the server, then sites, then admins, in spec order
    new: tuple[str, ...]  # participants this change added
    removed: tuple[Participant, ...]  # participants this change removed
    superseded: tuple[StillValid, ...]  # certificates this change replaced that still chain to the root CA
    # Removed participants (by this change or before) whose certificates still chain to the root CA: offered
    # with the plan that ends them (None when nothing removed is valid, or nobody remains to re-issue for).
    still_valid: tuple[StillValid, ...] = ()
    root_rotation: RootRotationPlan | None = None


NOBODY = WhoMustAct((), (), (), ())


@dataclass(frozen=True)
class ServerAddress:
    """What kits say about the server: its name (the certificate CN), the host they dial, its ports."""

    name: str
    host: str
    fl_port: int | None  # None: not known (a state from before kits were recorded)
    admin_port: int | None


# Per kind, the fields of the kit's NVFlare configuration that name the server, and what each is made of.
_FIELDS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "client": (
        ("startup/fed_client.json", "servers[0].service.target", ("host", "fl_port")),
        ("startup/fed_client.json", "servers[0].identity", ("name",)),
    ),
    "admin": (
        ("startup/fed_admin.json", "admin.server_identity", ("name",)),
        ("startup/fed_admin.json", "admin.host", ("host",)),
        ("startup/fed_admin.json", "admin.port", ("admin_port",)),
    ),
    "server": (
        ("startup/fed_server.json", "servers[0].service.target", ("name", "fl_port")),
        ("startup/fed_server.json", "servers[0].admin_port", ("admin_port",)),
    ),
}
_REASON_OF = {"name": SERVER_NAME, "host": HOST_NAME, "fl_port": PORT, "admin_port": PORT}


def server_fields(kind: str, address: ServerAddress) -> dict[tuple[str, str], str]:
    """(file, field) -> value of the fields a kit of `kind` holds about the server, as NVFlare 2.9 writes them."""
    return {(file, name): ":".join(str(getattr(address, part)) for part in parts) for file, name, parts in _FIELDS[kind]}


def spec_address(fed: Federation) -> ServerAddress:
    s = fed.server
    return ServerAddress(s.name, s.default_host, s.fl_port, s.admin_port)


def recorded_address(document: StateDocument) -> ServerAddress | None:
    """The server's address the kits of `document` were made with: its name and default host from the
    server's issuance record, its ports from its recorded kit's fed_server.json (None when unrecorded)."""
    from fedgen.provision.kitcache import cached_kit

    server = next((name for name, record in sorted(document.participants.items()) if record.get("type") == "server"), None)
    if server is None:
        return None
    hosts = document.participants[server].get("host_names") or [server]
    fl_port = admin_port = None
    record = document.kits.get(server)
    # (its own key, whatever its inputs were: the kit the last render built is the one to compare with)
    kit = cached_kit(record, str(record.get("key"))) if isinstance(record, dict) else None
    config = kit.get("startup/fed_server.json") if kit else None
    if config is not None:
        try:
            entry = json.loads(config.data)["servers"][0]
            fl_port = int(str(entry["service"]["target"]).rpartition(":")[2])
            admin_port = int(entry["admin_port"])
        except (ValueError, KeyError, IndexError, TypeError):
            fl_port = admin_port = None
    return ServerAddress(server, str(hosts[0]), fl_port, admin_port)


def _address_reasons(kind: str, old: ServerAddress, new: ServerAddress) -> list[Reason]:
    """One reason per part of the address that changed and that a kit of `kind` holds, with the fields it changed."""
    before, after = server_fields(kind, old), server_fields(kind, new)
    reasons = []
    for part in ("name", "host", "fl_port", "admin_port"):
        was, now = getattr(old, part), getattr(new, part)
        if was is None or was == now:
            continue
        changes = tuple(FieldChange(file, name, before[file, name], after[file, name]) for file, name, parts in _FIELDS[kind] if part in parts)
        if changes:
            reasons.append(Reason(_REASON_OF[part], str(was), str(now), changes))
    return reasons


def _roster(fed: Federation) -> list[tuple[str, str, str]]:
    """(name, kind, how its kit reaches it) for every participant, in spec order."""
    out = [(fed.server.name, "server", "commit")]
    out += [(s.name, "client", "request" if s.enrollment == "request" else "commit" if s.cluster else "bundle") for s in fed.sites]
    out += [(a.name, "admin", "bundle") for a in fed.admins]
    return out


def after_render(
    fed: Federation, before: StateDocument, after: StateDocument, issued: Collection[str], *, rolled: Collection[str] = (), now: datetime
) -> WhoMustAct:
    """Who must act after a render took the state from `before` to `after`, issuing `issued`; rolled: the
    server and sites on their own clusters whose pods the render restarts (their kit digest changes)."""
    old_root, new_root = before.nvflare_cert.get(ROOT_CERT), after.nvflare_cert.get(ROOT_CERT)
    first = not old_root
    root_changed = not first and old_root != new_root
    old_address, new_address = recorded_address(before), spec_address(fed)
    had = {n: k for n, k in known_participants(before).items() if n not in before.offboarded}  # (offboarded: gone)
    recipients = []
    for name, kind, delivery in _roster(fed):
        moved = _address_reasons(kind, old_address, new_address) if old_address and not first else []
        reasons: list[Reason] = []
        if delivery == "request":
            record = after.enrolled.get(name)
            if record is None or not record.get("certificate"):
                reasons.append(Reason(NOT_ENROLLED))
            elif new_root and not issued_by(record["certificate"], str(new_root)):
                reasons.append(Reason(ROOT_CA))
            reasons += moved
            action = "approve" if reasons and reasons[0].reason == ROOT_CA and not moved else "enroll-kit"
        else:
            if first or name not in had:
                reasons.append(Reason(NEW_PARTICIPANT))
            elif root_changed:
                reasons.append(Reason(ROOT_CA))
            elif name in issued:
                reasons.append(Reason(OWN_CERTIFICATE))
            if not first and name in had:
                reasons += moved
            if not reasons and name in rolled:
                reasons.append(Reason(KIT_CHANGED))
            action = delivery
        if reasons:
            recipients.append(Recipient(name, kind, action, tuple(reasons)))
    # `after` went through offboarding.record_offboarded: who it records anew is who this change removed.
    removed = tuple(Participant(n, str(r.get("kind"))) for n, r in after.offboarded.items() if n not in before.offboarded)
    valid = still_valid(after, declared=fed.participant_names, now=now) if removed else ()
    return WhoMustAct(
        must_act=tuple(recipients),
        new=tuple(r.name for r in recipients if r.reasons[0].reason == NEW_PARTICIPANT),
        removed=removed,
        superseded=() if root_changed else _superseded(before, [n for n in issued if n in had], now),
        still_valid=valid,
        root_rotation=root_rotation_plan(fed) if valid else None,
    )


def _superseded(before: StateDocument, names: Collection[str], now: datetime) -> tuple[StillValid, ...]:
    """The previous certificates of `names` (re-issued under the same root), while they have not expired."""
    kinds = known_participants(before)
    out = []
    for name in sorted(names):
        pem = certificate_of(before, name)
        if pem is None:
            continue
        not_after = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
        if not_after > now:
            out.append(StillValid(name, kinds.get(name, "client"), not_after, (not_after - now).days))
    return tuple(out)


def after_approval(site: str, action: str, *, root: str, previous_root: str | None, previous_not_after: datetime | None, now: datetime) -> WhoMustAct:
    """Who must act after `fedgen enroll approve` (action: approved | re-approved | restored | unchanged) under
    the root CA `root` (fingerprint): the site, when a new certificate was signed for it."""
    if action == "approved":
        return WhoMustAct((Recipient(site, "client", "package", (Reason(NEW_PARTICIPANT),)),), (site,), (), ())
    if action != "re-approved":
        return NOBODY
    new_root = previous_root is not None and previous_root != root
    superseded: tuple[StillValid, ...] = ()
    if not new_root and previous_not_after is not None and previous_not_after > now:
        superseded = (StillValid(site, "client", previous_not_after, (previous_not_after - now).days),)
    reason = Reason(ROOT_CA) if new_root else Reason(OWN_CERTIFICATE)
    return WhoMustAct((Recipient(site, "client", "package", (reason,)),), (), (), superseded)


def after_removal(document: StateDocument, *, now: datetime) -> WhoMustAct:
    """After `fedgen remove`: every participant of the federation is removed, nobody else must act; whatever
    the state's root CA issued that has not expired stays valid under it."""
    removed = tuple(Participant(n, k) for n, k in known_participants(document).items() if n not in document.offboarded)
    return WhoMustAct((), (), removed, (), still_valid(document, declared=(), now=now), None)
