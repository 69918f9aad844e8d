"""Certificate lifecycle: what the state holds, when it expires, and re-issuing one participant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fedgen.spec.model import Federation
from fedgen.state import StateDocument

ROOT = "root CA"


@dataclass(frozen=True)
class CertificateInfo:
    name: str
    kind: str  # root | server | client | admin
    status: str  # ok | expiring | expired | not-issued | stale (enrolled under a previous root CA)
    not_after: datetime | None
    days_left: int | None
    sha256: str | None


def _kinds(fed: Federation) -> dict[str, str]:
    kinds = {fed.server.name: "server"}
    kinds.update({s.name: "client" for s in fed.sites})
    kinds.update({a.name: "admin" for a in fed.admins})
    return kinds


def _info(name: str, kind: str, pem: str | None, now: datetime, within_days: int) -> CertificateInfo:
    if not pem:
        return CertificateInfo(name, kind, "not-issued", None, None, None)
    cert = x509.load_pem_x509_certificate(pem.encode())
    not_after = cert.not_valid_after_utc
    days = (not_after - now).days
    status = "expired" if not_after <= now else "expiring" if days < within_days else "ok"
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return CertificateInfo(name, kind, status, not_after, days, digest)


def _enrolled(name: str, document: StateDocument, root_pem: str | None, now: datetime, within_days: int) -> CertificateInfo:
    """A site enrolled by request: its certificate is the one `fedgen enroll approve` recorded (not-issued
    before that); stale when the current root CA did not issue it (approve the request again)."""
    pem = (document.enrolled.get(name) or {}).get("certificate")
    info = _info(name, "client", pem, now, within_days)
    if pem and root_pem and info.status != "expired" and not issued_by(pem, root_pem):
        return CertificateInfo(name, "client", "stale", info.not_after, info.days_left, info.sha256)
    return info


def issued_by(pem: str, root_pem: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    cert = x509.load_pem_x509_certificate(pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def certificate_report(fed: Federation, document: StateDocument, *, within_days: int, now: datetime | None = None) -> list[CertificateInfo]:
    """The root CA first, then the spec's participants in spec order (a render drops removed ones).

    Sites with `enrollment: request` hold no entry in NVFlare's cert.json: their row comes from
    document.enrolled (fedgen enroll approve).
    """
    now = now or datetime.now(timezone.utc)
    certs = document.nvflare_cert
    root_pem = certs.get("root_cert")
    out = [_info(ROOT, "root", root_pem, now, within_days)]
    kinds = _kinds(fed)
    requested = {s.name for s in fed.sites if s.enrollment == "request"}
    for name, kind in kinds.items():
        if name in requested:
            out.append(_enrolled(name, document, root_pem, now, within_days))
            continue
        entry = certs.get(name)
        out.append(_info(name, kind, entry.get("cert") if isinstance(entry, dict) else None, now, within_days))
    return out


def needs_attention(report: list[CertificateInfo]) -> bool:
    return any(c.status in ("expiring", "expired", "not-issued", "stale") for c in report)
