"""Offboarding: a participant removed from the spec keeps a certificate NVFlare still accepts.

NVFlare 2.9 checks no revocation list: a kit works while its certificate chains to the root CA the server
trusts and has not expired (360 days), however the spec changed. Provisioning drops a removed participant's
key and certificate from the state, so no new bundle can be made for it; what it already holds stays valid.
record_offboarded keeps that certificate (public, never a key) in StateDocument.offboarded, so later commands
can say who still holds a valid certificate and until when (still_valid), and what ending them takes: a new
root CA, whose cost for every remaining participant root_rotation_plan spells out. Pure functions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509

from fedgen.certs.lifecycle import issued_by
from fedgen.spec.model import Federation
from fedgen.state import StateDocument

ROOT_CERT = "root_cert"  # NVFlare's cert.json key of the root CA certificate


@dataclass(frozen=True)
class StillValid:
    """A certificate that chains to the current root CA and has not expired, held by someone the spec does not
    (or no longer) trust with it."""

    name: str
    kind: str  # server | client | admin
    not_after: datetime
    days_left: int


@dataclass(frozen=True)
class RootRotationPlan:
    """What `fedgen rotate --root-ca` requires from every participant the spec declares."""

    server: str  # rolled by the GitOps engine once the render is committed
    engine: str  # Config Sync | Argo CD
    bundles: tuple[str, ...]  # sites with bundles and admins: a new bundle each
    cluster_sites: tuple[str, ...]  # sites on their own clusters: rolled by their clusters' engine from the commit
    reapprove: tuple[str, ...]  # sites enrolling by request: their requests approved again, then nvflare package


def certificate_of(document: StateDocument, name: str) -> str | None:
    """The certificate (PEM) the state holds for `name`: NVFlare's cert.json entry, an enrollment record, or
    an offboarded record, in that order."""
    entry = document.nvflare_cert.get(name)
    if isinstance(entry, dict) and entry.get("cert"):
        return str(entry["cert"])
    for records in (document.enrolled, document.offboarded):
        pem = (records.get(name) or {}).get("certificate")
        if pem:
            return str(pem)
    return None


def known_participants(document: StateDocument) -> dict[str, str]:
    """Every participant the state holds a certificate for, with its kind (server | client | admin)."""
    kinds = {name: str(record.get("kind", "client")) for name, record in document.offboarded.items()}
    kinds.update({name: "client" for name in document.enrolled})
    kinds.update({name: str(record.get("type", "client")) for name, record in document.participants.items()})
    return {name: kind for name, kind in sorted(kinds.items()) if certificate_of(document, name)}


def record_offboarded(fed: Federation, before: StateDocument, after: StateDocument) -> StateDocument:
    """`after` (a render's new state) with every participant of `before` that the spec no longer declares kept in
    offboarded: its kind and last certificate. A name the spec declares again leaves the record; a new root CA
    clears the records of earlier removals (nothing they hold chains to it)."""
    declared = set(fed.participant_names)
    root = before.nvflare_cert.get(ROOT_CERT)
    kept = dict(before.offboarded) if root and root == after.nvflare_cert.get(ROOT_CERT) else {}
    for name, kind in known_participants(before).items():
        pem = certificate_of(before, name)
        # (an enrollment record outlives its site: only one under the root of `before` is news)
        if name not in kept and name not in before.offboarded and pem and root and issued_by(pem, str(root)):
            kept[name] = {"kind": kind, "certificate": pem}
    offboarded = {name: record for name, record in sorted(kept.items()) if name not in declared}
    return replace(after, offboarded=offboarded)


def still_valid(document: StateDocument, *, declared: Collection[str], now: datetime) -> tuple[StillValid, ...]:
    """The certificates of participants not in `declared` that chain to the state's root CA and have not
    expired, by name (every certificate of the state when declared is empty)."""
    root = document.nvflare_cert.get(ROOT_CERT)
    if not root:
        return ()
    out = []
    for name, kind in known_participants(document).items():
        pem = certificate_of(document, name)
        if name in declared or pem is None or not issued_by(pem, str(root)):
            continue
        not_after = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
        if not_after > now:
            out.append(StillValid(name, kind, not_after, (not_after - now).days))
    return tuple(out)


def root_rotation_plan(fed: Federation) -> RootRotationPlan:
    sites = fed.sites
    return RootRotationPlan(
        server=fed.server.name,
        engine=fed.gitops.engine_name,
        bundles=tuple([s.name for s in sites if not s.cluster and s.enrollment != "request"] + [a.name for a in fed.admins]),
        cluster_sites=tuple(s.name for s in fed.cluster_sites),
        reapprove=tuple(s.name for s in sites if s.enrollment == "request"),
    )
