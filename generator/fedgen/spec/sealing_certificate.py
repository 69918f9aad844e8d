"""The sealed-secrets controller's certificate a spec names (`sealing.certificate`, what `kubeseal --fetch-cert`
prints): loading and checking it, and its fingerprint. Here, below seal/, because checking the spec reads it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from fedgen.errors import InputError


@dataclass(frozen=True)
class SealingCertificate:
    """The controller's sealing certificate (what ``kubeseal --fetch-cert`` prints)."""

    pem: bytes  # the certificate re-encoded as a single canonical PEM block
    public_key: RSAPublicKey
    not_after: _dt.datetime  # timezone-aware, UTC
    sha256: str  # hex digest of the DER certificate
    key_size: int


def _utc(moment: _dt.datetime) -> _dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)


def load_certificate(pem: bytes, *, origin: str, now: _dt.datetime | None = None) -> SealingCertificate:
    """Parse and check a PEM X.509 sealing certificate.

    Raises :class:`InputError` ``"<origin>: ..."`` (one line) when the data is not PEM, not an X.509
    certificate (a private or public key, say), does not carry an RSA key, or expired before ``now``
    (default: the current time; a naive ``now`` is taken as UTC). If several certificates are present the
    first one is used, as kubeseal does.
    """
    if not isinstance(pem, (bytes, bytearray)):
        raise InputError(f"{origin}: certificate data must be bytes, not {type(pem).__name__}")
    data = bytes(pem)
    if b"-----BEGIN " not in data:
        raise InputError(f"{origin}: not a PEM file (no '-----BEGIN ...-----' block); expected an X.509 certificate")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(f"{origin}: PEM block is {_pem_label(data)!r}, not an X.509 certificate ('-----BEGIN CERTIFICATE-----')")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{origin}: not a valid X.509 certificate ({detail})") from None
    try:
        public_key = cert.public_key()
    except ValueError as exc:  # unsupported key algorithm
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{origin}: certificate public key cannot be read ({detail})") from None
    if not isinstance(public_key, RSAPublicKey):
        raise InputError(f"{origin}: certificate key is {_key_algorithm(public_key)}, but sealed secrets need an RSA key")
    not_after = _utc(cert.not_valid_after_utc)
    moment = _utc(now) if now is not None else _dt.datetime.now(_dt.timezone.utc)
    if not_after < moment:
        raise InputError(f"{origin}: certificate expired on {not_after.isoformat()} (fetch the current one with 'kubeseal --fetch-cert')")
    der = cert.public_bytes(serialization.Encoding.DER)
    return SealingCertificate(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        public_key=public_key,
        not_after=not_after,
        sha256=hashlib.sha256(der).hexdigest(),
        key_size=public_key.key_size,
    )


def fingerprint(sha256_hex: str) -> str:
    """SHA256:AA:BB:... of a certificate's DER SHA-256, the pairs `openssl x509 -noout -fingerprint -sha256` prints."""
    pairs = sha256_hex.upper()
    return "SHA256:" + ":".join(pairs[i : i + 2] for i in range(0, len(pairs), 2))


def parse_fingerprint(text: str) -> str:
    """The hex SHA-256 in a fingerprint written as fingerprint() does or as openssl prints it
    (`sha256 Fingerprint=AA:...`); InputError otherwise."""
    value = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    digest = value.replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InputError(
            f"{text!r}: not a certificate's SHA-256 fingerprint (expected SHA256: and 32 hex pairs, as `openssl x509 -noout -fingerprint -sha256` prints)"
        )
    return digest


def _pem_label(data: bytes) -> str:
    start = data.find(b"-----BEGIN ")
    end = data.find(b"-----", start + 11)
    if start < 0 or end < 0:
        return "?"
    return data[start + 11 : end].decode("ascii", "replace").strip() or "?"


def _key_algorithm(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.name})"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA"
    return type(key).__name__
