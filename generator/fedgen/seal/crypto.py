"""Sealing one value as Bitnami Sealed Secrets does, offline with the ``cryptography`` library.

Format (per value of ``spec.encryptedData``), as the sealed-secrets controller expects it:

* a fresh random 32-byte AES-256 session key per value;
* the session key encrypted with RSA-OAEP (SHA-256, MGF1 SHA-256) under the controller's public key, with
  the OAEP label chosen by the scope: ``namespace/name`` (strict), ``namespace`` (namespace-wide) or empty
  (cluster-wide);
* the value encrypted with AES-256-GCM under the session key, 12-byte all-zero nonce (safe: the key is
  never reused), no additional data;
* ``uint16 big-endian len(rsa ciphertext) | rsa ciphertext | gcm ciphertext+tag``, base64 (standard, padded).

Sealing is random by design: reuse.py keeps the repository's ciphertext where nothing changed.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedgen.errors import InputError
from fedgen.spec.sealing_certificate import SealingCertificate

SCOPES: tuple[str, ...] = ("strict", "namespace-wide", "cluster-wide")

_SESSION_KEY_BYTES = 32
_GCM_NONCE = bytes(12)
_GCM_TAG_BYTES = 16


class UnsealError(InputError):
    """A sealed value could not be decrypted (wrong key, scope, namespace or name, or corrupt data)."""


def check_scope(scope: str, *, namespace: str, name: str) -> None:
    if scope not in SCOPES:
        raise InputError(f"unknown sealing scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    if scope != "cluster-wide" and not namespace:
        raise InputError(f"a {scope} sealed secret needs a namespace")
    if scope == "strict" and not name:
        raise InputError("a strict sealed secret needs a name")


def encryption_label(*, namespace: str, name: str, scope: str) -> bytes:
    """The RSA-OAEP label the controller uses for ``scope``."""
    check_scope(scope, namespace=namespace, name=name)
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
            f"cannot decrypt the session key: wrong private key, or sealed for another scope/namespace/name (tried {scope} scope, label {label.decode()!r})"
        ) from None
    if len(session_key) != _SESSION_KEY_BYTES:
        raise UnsealError(f"session key has {len(session_key)} bytes, expected {_SESSION_KEY_BYTES}")
    try:
        return AESGCM(session_key).decrypt(_GCM_NONCE, body, None)
    except InvalidTag:
        raise UnsealError("sealed value failed authentication (corrupt ciphertext)") from None
