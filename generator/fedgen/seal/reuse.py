"""Re-seal only what changed: the ciphertext a render keeps and the records that let the next render keep it.

Sealing is random, so sealing again would change every SealedSecret on every render. The state records, per
sealed value, digests of the plaintext, the certificate, the scope and the ciphertext; when all match, the
repository's ciphertext (read by the caller, handed in as ``previous``) is kept byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from fedgen.seal.crypto import check_scope, seal_value
from fedgen.spec.sealing_certificate import SealingCertificate


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
    check_scope(scope, namespace=namespace, name=name)
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
