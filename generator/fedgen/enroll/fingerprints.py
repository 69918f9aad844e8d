"""Digests and fingerprints of enrollment certificates and keys, in the forms NVFlare and the operator use."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """SHA-256 fingerprint of a certificate (PEM bytes or loaded) as SHA256:AA:BB:... (upper case)."""
    if isinstance(cert, (bytes, bytearray)):
        cert = x509.load_pem_x509_certificate(bytes(cert))
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def public_key_sha256(key: Any) -> str:
    return sha256_hex(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def key_fingerprint(public_key_sha256_hex: str) -> str:
    """A public key's SHA-256 (hex of its SubjectPublicKeyInfo, as request.json records it) as SHA256:AA:BB:...,
    the form a site reads out to the operator over a second channel."""
    digest = public_key_sha256_hex.upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def certificate_key_sha256(pem: bytes) -> str:
    """public_key_sha256 of the key a PEM certificate carries."""
    return public_key_sha256(x509.load_pem_x509_certificate(pem).public_key())


def chains_to(cert: x509.Certificate, root: x509.Certificate) -> bool:
    """True when `root` issued `cert` (issuer name and signature)."""
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
