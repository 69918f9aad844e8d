"""Seal every secret a render puts in the repo, re-sealing only what changed.

The state records, per sealed value, digests of the plaintext, the certificate, the scope and the
ciphertext; when all match what is in the repo, the existing ciphertext is kept byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from fedgen.seal import SealingCertificate, generate_development_keypair, load_certificate, seal_data
from fedgen.state import StateDocument

DEV_SEALING_WARNING = (
    "no sealing certificate for cluster {cluster}: sealed with a development key kept in the state, which "
    "no cluster can unseal. Fetch the controller's certificate with `kubeseal --fetch-cert > "
    "keys/sealed-secrets.pem` and name it in the spec"
)


@dataclass(frozen=True)
class SecretToSeal:
    namespace: str
    name: str
    data: Mapping[str, bytes]
    certificate: Path | None  # the cluster's controller certificate; None = the development pair
    cluster: str
    scope: str
    repo_path: str  # where its SealedSecret lives, to reuse unchanged ciphertext


def seal_all(repo: Path, document: StateDocument, secrets: list[SecretToSeal]) -> tuple[dict[tuple[str, str], dict[str, str]], StateDocument, list[str]]:
    """(namespace, name) -> encryptedData, the state with new records, warnings."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    records: dict[str, dict[str, str]] = {}
    warnings: list[str] = []
    for secret in secrets:
        cert, document = _certificate(secret, document, warnings)
        prefix = f"{secret.namespace}/{secret.name}/"
        previous_records = {k[len(prefix) :]: v for k, v in document.sealed.items() if k.startswith(prefix)}
        encrypted, new_records = seal_data(
            cert,
            secret.data,
            namespace=secret.namespace,
            name=secret.name,
            scope=secret.scope,
            previous=previous_encrypted(repo / secret.repo_path),
            records=previous_records,
        )
        out[(secret.namespace, secret.name)] = encrypted
        records.update({prefix + k: dict(v) for k, v in new_records.items()})
    # Only this render's secrets stay recorded: records of renamed or removed secrets go with them.
    return out, replace(document, sealed=dict(sorted(records.items()))), sorted(set(warnings))


def _certificate(secret: SecretToSeal, document: StateDocument, warnings: list[str]) -> tuple[SealingCertificate, StateDocument]:
    if secret.certificate is not None:
        return load_certificate(secret.certificate.read_bytes(), origin=str(secret.certificate)), document
    warnings.append(DEV_SEALING_WARNING.format(cluster=secret.cluster))
    if "certificate" not in document.sealing:
        key_pem, cert_pem = generate_development_keypair()
        document = replace(document, sealing={"private_key": key_pem.decode(), "certificate": cert_pem.decode()})
    return load_certificate(document.sealing["certificate"].encode(), origin="development sealing certificate"), document


def previous_encrypted(path: Path) -> dict[str, str]:
    """encryptedData of the SealedSecret currently at path (empty when absent or unreadable)."""
    from ruamel.yaml import YAML

    if not path.is_file():
        return {}
    try:
        for doc in YAML(typ="safe", pure=True).load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SealedSecret":
                data = doc.get("spec", {}).get("encryptedData", {})
                return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except Exception:  # an unreadable file is simply re-sealed
        return {}
    return {}
