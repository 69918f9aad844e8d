"""Bitnami Sealed Secrets, implemented offline with the ``cryptography`` library.

Format (per value of ``spec.encryptedData``), as the sealed-secrets controller expects it:

* a fresh random 32-byte AES-256 session key per value;
* the session key encrypted with RSA-OAEP (SHA-256, MGF1 SHA-256) under the controller's public key, with
  the OAEP label chosen by the scope: ``namespace/name`` (strict), ``namespace`` (namespace-wide) or empty
  (cluster-wide);
* the value encrypted with AES-256-GCM under the session key, 12-byte all-zero nonce (safe: the key is
  never reused), no additional data;
* ``uint16 big-endian len(rsa ciphertext) | rsa ciphertext | gcm ciphertext+tag``, base64 (standard, padded).

The controller derives the label from the annotations on the SealedSecret's *own* metadata
(``sealedsecrets.bitnami.com/namespace-wide`` / ``sealedsecrets.bitnami.com/cluster-wide``); kubeseal also
copies them onto ``spec.template.metadata``, and so does :func:`sealed_secret_manifest`.

Sealing is random by design, so :func:`seal_data` only re-seals values whose plaintext, certificate or
scope changed, keeping the repository's ciphertext byte for byte otherwise.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from fedgen.errors import InputError

__all__ = [
    "ANNOTATION_CLUSTER_WIDE",
    "ANNOTATION_NAMESPACE_WIDE",
    "API_VERSION",
    "KIND",
    "SCOPES",
    "SealingCertificate",
    "UnsealError",
    "encryption_label",
    "fingerprint",
    "generate_development_keypair",
    "load_certificate",
    "parse_fingerprint",
    "scope_annotations",
    "seal_data",
    "seal_value",
    "sealed_secret_manifest",
    "unseal_value",
]

SCOPES: tuple[str, ...] = ("strict", "namespace-wide", "cluster-wide")

API_VERSION = "bitnami.com/v1alpha1"
KIND = "SealedSecret"
ANNOTATION_NAMESPACE_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
ANNOTATION_CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"

_SESSION_KEY_BYTES = 32
_GCM_NONCE = bytes(12)
_GCM_TAG_BYTES = 16
_DEV_KEY_BITS = 4096
_DEV_VALIDITY = _dt.timedelta(days=3650)


class UnsealError(InputError):
    """A sealed value could not be decrypted (wrong key, scope, namespace or name, or corrupt data)."""


@dataclass(frozen=True)
class SealingCertificate:
    """The controller's sealing certificate (what ``kubeseal --fetch-cert`` prints)."""

    pem: bytes  # the certificate re-encoded as a single canonical PEM block
    public_key: RSAPublicKey
    not_after: _dt.datetime  # timezone-aware, UTC
    sha256: str  # hex digest of the DER certificate
    key_size: int


# --------------------------------------------------------------------------------------------------------------
# certificates


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
        raise InputError(
            f"{origin}: PEM block is {_pem_label(data)!r}, not an X.509 certificate ('-----BEGIN CERTIFICATE-----')"
        )
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
        raise InputError(
            f"{origin}: certificate key is {_key_algorithm(public_key)}, but sealed secrets need an RSA key"
        )
    not_after = _utc(cert.not_valid_after_utc)
    moment = _utc(now) if now is not None else _dt.datetime.now(_dt.timezone.utc)
    if not_after < moment:
        raise InputError(
            f"{origin}: certificate expired on {not_after.isoformat()} "
            f"(fetch the current one with 'kubeseal --fetch-cert')"
        )
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
        raise InputError(f"{text!r}: not a certificate's SHA-256 fingerprint (expected SHA256: and 32 hex pairs, as `openssl x509 -noout -fingerprint -sha256` prints)")
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


def generate_development_keypair(*, common_name: str = "fedgen-development-sealing") -> tuple[bytes, bytes]:
    """Return ``(private key PEM, self-signed certificate PEM)`` for local development and tests.

    RSA 4096 like the controller's own keys, certificate valid for 10 years. The private key is written as
    PKCS#1 (``RSA PRIVATE KEY``), the form the controller keeps in its ``tls.key``; both kubeseal
    ``--recovery-private-key`` and :func:`unseal_value` accept it.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=_DEV_KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + _DEV_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------------------------------------------
# values


def _check_scope(scope: str, *, namespace: str, name: str) -> None:
    if scope not in SCOPES:
        raise InputError(f"unknown sealing scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    if scope != "cluster-wide" and not namespace:
        raise InputError(f"a {scope} sealed secret needs a namespace")
    if scope == "strict" and not name:
        raise InputError("a strict sealed secret needs a name")


def encryption_label(*, namespace: str, name: str, scope: str) -> bytes:
    """The RSA-OAEP label the controller uses for ``scope``."""
    _check_scope(scope, namespace=namespace, name=name)
    if scope == "strict":
        return f"{namespace}/{name}".encode()
    if scope == "namespace-wide":
        return namespace.encode()
    return b""


def _oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()),
        algorithm=hashes.SHA256(),
        label=label or None,  # an empty label and no label are the same in OAEP (hash of the empty string)
    )


def seal_value(cert: SealingCertificate, plaintext: bytes, *, namespace: str, name: str, scope: str) -> str:
    """Seal one value; returns the base64 string that goes into ``spec.encryptedData``."""
    label = encryption_label(namespace=namespace, name=name, scope=scope)
    session_key = os.urandom(_SESSION_KEY_BYTES)
    wrapped = cert.public_key.encrypt(session_key, _oaep(label))
    body = AESGCM(session_key).encrypt(_GCM_NONCE, bytes(plaintext), None)
    blob = len(wrapped).to_bytes(2, "big") + wrapped + body
    return base64.b64encode(blob).decode("ascii")


def unseal_value(private_key_pem: bytes, ciphertext_b64: str, *, namespace: str, name: str, scope: str) -> bytes:
    """Decrypt one sealed value (tests, end-to-end checks). Raises :class:`UnsealError` on any failure."""
    label = encryption_label(namespace=namespace, name=name, scope=scope)
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UnsealError(f"cannot read the private key ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnsealError("the private key is not an RSA key")
    try:
        blob = base64.b64decode(ciphertext_b64, validate=True)
    except (binascii.Error, ValueError):
        raise UnsealError("sealed value is not valid base64") from None
    if len(blob) < 2:
        raise UnsealError("sealed value is truncated")
    rsa_len = int.from_bytes(blob[:2], "big")
    if len(blob) < 2 + rsa_len + _GCM_TAG_BYTES:
        raise UnsealError("sealed value is truncated")
    wrapped, body = blob[2 : 2 + rsa_len], blob[2 + rsa_len :]
    try:
        session_key = key.decrypt(wrapped, _oaep(label))
    except ValueError:
        raise UnsealError(
            f"cannot decrypt the session key: wrong private key, or sealed for another scope/namespace/name "
            f"(tried {scope} scope, label {label.decode()!r})"
        ) from None
    if len(session_key) != _SESSION_KEY_BYTES:
        raise UnsealError(f"session key has {len(session_key)} bytes, expected {_SESSION_KEY_BYTES}")
    try:
        return AESGCM(session_key).decrypt(_GCM_NONCE, body, None)
    except InvalidTag:
        raise UnsealError("sealed value failed authentication (corrupt ciphertext)") from None


# --------------------------------------------------------------------------------------------------------------
# whole secrets


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal_data(
    cert: SealingCertificate,
    data: Mapping[str, bytes],
    *,
    namespace: str,
    name: str,
    scope: str,
    previous: Mapping[str, str],
    records: Mapping[str, Mapping[str, str]],
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Seal every value of ``data``, re-using ciphertext from ``previous`` where nothing changed.

    ``previous`` is the ``encryptedData`` currently in the repository (may be empty) and ``records`` what
    :func:`seal_data` returned last time for this same secret. A key keeps ``previous[key]`` byte for byte
    only when that ciphertext is exactly the one recorded (``ciphertext_sha256``) and the plaintext,
    certificate and scope are unchanged; otherwise it is sealed anew. Keys absent from ``data`` are dropped.

    ``records`` carry no namespace/name: callers must key them by the secret's namespace and name, so that a
    renamed secret (a different strict label) starts without records and is re-sealed.

    Returns ``(encryptedData, records)``, both with sorted keys; each record is
    ``{"plaintext_sha256", "certificate_sha256", "scope", "ciphertext_sha256"}``.
    """
    _check_scope(scope, namespace=namespace, name=name)
    encrypted: dict[str, str] = {}
    new_records: dict[str, dict[str, str]] = {}
    for key in sorted(data):
        plaintext = bytes(data[key])
        plaintext_sha256 = _sha256_hex(plaintext)
        old = previous.get(key)
        record = records.get(key)
        reusable = (
            old is not None
            and record is not None
            and record.get("ciphertext_sha256") == _sha256_hex(old.encode("utf-8"))
            and record.get("plaintext_sha256") == plaintext_sha256
            and record.get("certificate_sha256") == cert.sha256
            and record.get("scope") == scope
        )
        if reusable and old is not None:
            ciphertext = old
        else:
            ciphertext = seal_value(cert, plaintext, namespace=namespace, name=name, scope=scope)
        encrypted[key] = ciphertext
        new_records[key] = {
            "plaintext_sha256": plaintext_sha256,
            "certificate_sha256": cert.sha256,
            "scope": scope,
            "ciphertext_sha256": _sha256_hex(ciphertext.encode("utf-8")),
        }
    return encrypted, new_records


def scope_annotations(scope: str) -> dict[str, str]:
    """The annotations kubeseal writes for ``scope`` (none for strict)."""
    if scope not in SCOPES:
        raise InputError(f"unknown sealing scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    if scope == "namespace-wide":
        return {ANNOTATION_NAMESPACE_WIDE: "true"}
    if scope == "cluster-wide":
        return {ANNOTATION_CLUSTER_WIDE: "true"}
    return {}


def sealed_secret_manifest(
    *,
    name: str,
    namespace: str,
    scope: str,
    encrypted_data: Mapping[str, str],
    secret_type: str = "Opaque",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``bitnami.com/v1alpha1`` SealedSecret as plain dicts (ready for YAML/JSON dumping).

    Scope annotations go on the SealedSecret's own metadata (where the controller reads them to pick the
    decryption label) and, as kubeseal writes them, on ``spec.template.metadata`` too. No
    ``creationTimestamp`` anywhere.
    """
    _check_scope(scope, namespace=namespace, name=name)
    annotations = scope_annotations(scope)

    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)

    template_metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        template_metadata["labels"] = {k: labels[k] for k in sorted(labels)}
    if annotations:
        template_metadata["annotations"] = dict(annotations)

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "encryptedData": {k: encrypted_data[k] for k in sorted(encrypted_data)},
            "template": {"metadata": template_metadata, "type": secret_type},
        },
    }
