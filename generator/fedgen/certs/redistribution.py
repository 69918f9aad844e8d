"""Who must act after a change: the participants whose kit changed, why, and how each gets the new one.

A participant's kit changes when its own certificate is re-issued (rotation, a new role or org, the server's
host names), when the root CA changes (every kit trusts exactly one), and when the server's address in its
NVFlare configuration changes: fed_client.json dials `<default host>:<fl port>` and expects the server's name as
the certificate CN, fed_admin.json dials `<default host>` on the admin port (server_fields, checked against
NVFlare's own kits by the tests). The state before and after a render holds everything needed: the root CA,
who had a certificate, the server's address (its host names record, its kit's fed_server.json, the recorded
externalAddress) and, per enrolled site, the signed zip its kit was packaged from. Pure.

A site enrolling by request packages its own kit (`nvflare package`) from its signed zip and its own request
folder: the signed zip carries the root CA, the server's name and its fl port (enroll.kit.client_profile), the
site's site.yaml the host it dials (connect_to.host). So a new root CA, server name or fl port needs a new
signed zip (approve), a new default host an edit on the site's side only.

How each participant gets its new kit (Recipient.action):
    bundle      a site with a bundle, or an admin: `fedgen client-bundle NAME`, sent to it
    commit      the server, a site on its own cluster: commit and push; the GitOps engine rolls the workload
    approve     an enrolled site whose signed zip is out of date (root CA, server name, fl port): approve its
                request again; it re-packages
    enroll-kit  a site enrolling by request that has no certificate yet: `fedgen enroll kit NAME`, then it
                requests and you approve
    package     a site whose request was just approved: it pulls the signed zip and runs `nvflare package`
    reconfigure a participant whose kit from fedgen is unchanged but whose own configuration names the old
                value: an enrolled site's connect_to.host (host-name), the address a site or admin maps the
                server's name to itself (server-address)
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from fedgen.certs.lifecycle import issued_by
from fedgen.certs.offboarding import ROOT_CERT, RootRotationPlan, StillValid, certificate_of, known_participants, root_rotation_plan, still_valid
from fedgen.enroll.approve import recorded_signed_zip
from fedgen.enroll.kit import client_profile
from fedgen.enroll.signed_zip import SignedInfo
from fedgen.spec.model import Federation, address_ip
from fedgen.state import StateDocument

# Why a participant must act (Reason.reason), in the order they are reported.
NEW_PARTICIPANT = "new-participant"
NOT_ENROLLED = "not-enrolled"  # a site enrolling by request that has no certificate (yet)
ROOT_CA = "root-ca"
OWN_CERTIFICATE = "own-certificate"
SERVER_NAME = "server-name"
HOST_NAME = "host-name"
PORT = "port"
SERVER_ADDRESS = "server-address"  # server.externalAddress: what the server's name is mapped to
KIT_CHANGED = "kit-changed"  # the server or a site on its own cluster: another part of its kit changed
REASONS = (NEW_PARTICIPANT, NOT_ENROLLED, ROOT_CA, OWN_CERTIFICATE, SERVER_NAME, HOST_NAME, PORT, SERVER_ADDRESS, KIT_CHANGED)
ACTIONS = ("bundle", "commit", "approve", "enroll-kit", "package", "reconfigure")
_SIGNED = (ROOT_CA, SERVER_NAME, PORT)  # what an enrolled site's signed zip carries: a new one is approved


@dataclass(frozen=True)
class FieldChange:
    file: str  # the kit file, e.g. startup/fed_client.json
    field: str  # where in it, e.g. servers[0].service.target
    old: str
    new: str


@dataclass(frozen=True)
class Reason:
    reason: str  # one of REASONS
    old: str | None = None  # server-name, host-name, port, server-address: the value before (None: unset)
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
    readdressed = _readdressed(before, fed) if not first else None
    had = {n: k for n, k in known_participants(before).items() if n not in before.offboarded}  # (offboarded: gone)
    recipients = []
    for name, kind, delivery in _roster(fed):
        moved = _address_reasons(kind, old_address, new_address) if old_address and not first else []
        reasons: list[Reason] = []
        if delivery == "request":
            record = after.enrolled.get(name)
            if record is None or not record.get("certificate"):
                reasons = [Reason(NOT_ENROLLED), *moved]  # (the kit it makes next holds the new address)
                action = "enroll-kit"
            else:
                reasons = _enrolled_reasons(fed, name, record, new_root, moved) + ([readdressed] if readdressed else [])
                action = "approve" if any(r.reason in _SIGNED for r in reasons) else "reconfigure"
        else:
            if first or name not in had:
                reasons.append(Reason(NEW_PARTICIPANT))
            elif root_changed:
                reasons.append(Reason(ROOT_CA))
            elif name in issued:
                reasons.append(Reason(OWN_CERTIFICATE))
            if not first and name in had:
                reasons += moved
                if readdressed and kind != "server" and (delivery == "bundle" or address_ip(readdressed.old) != address_ip(readdressed.new)):
                    reasons.append(readdressed)  # (a site cluster's Deployment and egress policy hold the IP only)
            if not reasons and name in rolled:
                reasons.append(Reason(KIT_CHANGED))
            action = "reconfigure" if reasons and all(r.reason == SERVER_ADDRESS for r in reasons) and delivery == "bundle" else delivery
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


def _readdressed(before: StateDocument, fed: Federation) -> Reason | None:
    """server.externalAddress changed since the render that made `before` (None also when it did not record it)."""
    if "external_address" not in before.server:
        return None
    old, new = before.server["external_address"], fed.server.external_address
    return Reason(SERVER_ADDRESS, old, new) if old != new else None


def _enrolled_reasons(fed: Federation, name: str, record: dict[str, str], root: str | None, moved: list[Reason]) -> list[Reason]:
    """Why an enrolled site must act: its signed zip is not under the root CA `root` or carries another server
    name or fl port than the spec (until it is approved again); the host its kit dials moved (its own site.yaml)."""
    reasons = [] if not root or issued_by(record["certificate"], str(root)) else [Reason(ROOT_CA)]
    signed = recorded_signed_zip(record, name)
    host = signed.dialled
    (server, fl_port), (want_server, want_port) = signed.client_profile, client_profile(fed)
    reasons += _address_reasons("client", ServerAddress(server, host, fl_port, None), ServerAddress(want_server, host, want_port, None))
    return reasons + [r for r in moved if r.reason == HOST_NAME]


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


def after_approval(
    site: str,
    action: str,
    *,
    root: str,
    previous_root: str | None,
    previous_not_after: datetime | None,
    now: datetime,
    signed: SignedInfo,
    previous_profile: tuple[str, int] | None = None,
) -> WhoMustAct:
    """Who must act after `fedgen enroll approve` (action: approved | re-approved | restored | unchanged) under
    the root CA `root` (fingerprint): the site, when a new certificate was signed for it; why: a new root CA,
    another server name or fl port in its signed zip than `previous_profile` carried, else its new certificate."""
    if action == "approved":
        return WhoMustAct((Recipient(site, "client", "package", (Reason(NEW_PARTICIPANT),)),), (site,), (), ())
    if action != "re-approved":
        return NOBODY
    new_root = previous_root is not None and previous_root != root
    superseded: tuple[StillValid, ...] = ()
    if not new_root and previous_not_after is not None and previous_not_after > now:
        superseded = (StillValid(site, "client", previous_not_after, (previous_not_after - now).days),)
    reasons = [Reason(ROOT_CA)] if new_root else []
    if previous_profile is not None:
        host = signed.dialled
        (was_name, was_port), (name, port) = previous_profile, signed.client_profile
        reasons += _address_reasons("client", ServerAddress(was_name, host, was_port, None), ServerAddress(name, host, port, None))
    return WhoMustAct((Recipient(site, "client", "package", tuple(reasons or [Reason(OWN_CERTIFICATE)])),), (), (), superseded)


def after_removal(document: StateDocument, *, now: datetime) -> WhoMustAct:
    """After `fedgen remove`: every participant of the federation is removed, nobody else must act; whatever
    the state's root CA issued that has not expired stays valid under it."""
    removed = tuple(Participant(n, k) for n, k in known_participants(document).items() if n not in document.offboarded)
    return WhoMustAct((), (), removed, (), still_valid(document, declared=(), now=now), None)
