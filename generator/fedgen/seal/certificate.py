"""A development sealing pair (private key and self-signed certificate) for local use and tests, used when a
spec names no sealing certificate."""

from __future__ import annotations

import datetime as _dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_DEV_KEY_BITS = 4096
_DEV_VALIDITY = _dt.timedelta(days=3650)


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
