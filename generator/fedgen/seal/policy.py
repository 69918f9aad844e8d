"""Seal every secret a render puts in the repo, re-sealing only what changed, and only to trusted certificates.

The state records, per sealed value, digests of the plaintext, the certificate, the scope and the
ciphertext; when all match what is in the repo, the existing ciphertext is kept byte for byte.

The spec names the sealing certificates, and a pull request can change the spec: sealing a private key to
whatever certificate it names would hand the key to whoever holds that certificate's key. So the state
records, per cluster, the certificate renders seal to (the first render of a state records the ones it
uses; states older than that record are read from the per-value records), and a render seals to another
certificate only when the operator accepts its fingerprint explicitly. The development pair counts as
recorded: its private key is in the state already.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from fedgen.errors import InputError
from fedgen.seal.certificate import generate_development_keypair
from fedgen.seal.reuse import seal_data
from fedgen.spec.sealing_certificate import SealingCertificate, fingerprint, load_certificate
from fedgen.state import StateDocument

DEV_SEALING_WARNING = (
    "no sealing certificate for cluster {cluster}: sealed with a development key kept in the state, which "
    "no cluster can unseal. Fetch the controller's certificate with `kubeseal --fetch-cert > "
    "keys/sealed-secrets.pem` and name it in the spec"
)
# encryptedData of a value a --check could not seal (certificate not trusted) and the repo has no ciphertext for.
NOT_SEALED = ""


@dataclass(frozen=True)
class SecretToSeal:
    namespace: str
    name: str
    data: Mapping[str, bytes]
    certificate: Path | None  # the cluster's controller certificate; None = the development pair
    cluster: str
    scope: str
    repo_path: str  # where its SealedSecret lives: the key of its committed ciphertext in seal_all's `previous`

    @property
    def prefix(self) -> str:
        """Its values' keys in StateDocument.sealed."""
        return f"{self.namespace}/{self.name}/"


@dataclass(frozen=True)
class CertificateChange:
    """A cluster whose spec names a sealing certificate the state does not record for it: nothing was sealed to it."""

    cluster: str
    origin: str  # the certificate file the spec names
    new: str  # its fingerprint (SHA256:AA:...)
    recorded: tuple[str, ...]  # the fingerprints the state records for the cluster (none: a cluster new to the state)

    def describe(self) -> str:
        was = " or ".join(self.recorded) if self.recorded else "none (a cluster new to this state)"
        return f"sealing certificate of cluster {self.cluster} changed: the state records {was}, the spec names {self.new} ({self.origin})"


@dataclass(frozen=True)
class SealResult:
    encrypted: dict[tuple[str, str], dict[str, str]]  # (namespace, name) -> encryptedData
    document: StateDocument  # with the new records
    warnings: list[str]
    untrusted: tuple[CertificateChange, ...]  # their secrets keep the repo's ciphertext (NOT_SEALED when none)


def seal_all(
    document: StateDocument,
    secrets: list[SecretToSeal],
    *,
    previous: Mapping[str, Mapping[str, str]],
    accepted: Collection[str] = (),
) -> SealResult:
    """Seal each secret to its cluster's certificate when the state trusts it, or its SHA-256 is in accepted.

    previous: repo path -> encryptedData of the SealedSecret committed there (read by the caller, once)."""
    trusted = _trusted_certificates(document, secrets)
    out: dict[tuple[str, str], dict[str, str]] = {}
    records: dict[str, dict[str, str]] = {}
    pinned = dict(document.sealing_certificates)
    untrusted: dict[str, CertificateChange] = {}
    named: set[str] = set()
    warnings: list[str] = []
    for secret in secrets:
        cert, document = _certificate(secret, document, warnings)
        named.add(cert.sha256)
        previous_records = {k[len(secret.prefix) :]: v for k, v in document.sealed.items() if k.startswith(secret.prefix)}
        committed = previous.get(secret.repo_path, {})
        allowed = trusted.get(secret.cluster)
        if secret.certificate is not None and allowed is not None and cert.sha256 not in allowed and cert.sha256 not in accepted:
            untrusted[secret.cluster] = CertificateChange(
                secret.cluster, str(secret.certificate), fingerprint(cert.sha256), tuple(fingerprint(c) for c in sorted(allowed))
            )
            out[(secret.namespace, secret.name)] = {k: committed.get(k, NOT_SEALED) for k in sorted(secret.data)}
            records.update({secret.prefix + k: dict(v) for k, v in previous_records.items()})
            continue
        encrypted, new_records = seal_data(
            cert,
            secret.data,
            namespace=secret.namespace,
            name=secret.name,
            scope=secret.scope,
            previous=committed,
            records=previous_records,
        )
        pinned[secret.cluster] = cert.sha256
        out[(secret.namespace, secret.name)] = encrypted
        records.update({secret.prefix + k: dict(v) for k, v in new_records.items()})
    unknown = sorted(set(accepted) - named)
    if unknown:
        raise InputError(
            f"--accept-sealing-cert {fingerprint(unknown[0])}: no cluster of the spec has this sealing certificate (it names {', '.join(fingerprint(c) for c in sorted(named))})"
        )
    # Only this render's secrets stay recorded: records of renamed or removed secrets go with them.
    document = replace(document, sealed=dict(sorted(records.items())), sealing_certificates=dict(sorted(pinned.items())))
    return SealResult(out, document, sorted(set(warnings)), tuple(untrusted[c] for c in sorted(untrusted)))


def _trusted_certificates(document: StateDocument, secrets: list[SecretToSeal]) -> dict[str, set[str]]:
    """cluster -> the certificate SHA-256s the state trusts for it. A state that never sealed anything trusts
    whatever its first render seals to (no entry); in a state from before per-cluster records, the
    certificates its secrets were sealed to."""
    if not document.sealing_certificates and not document.sealed:
        return {}
    trusted: dict[str, set[str]] = {cluster: {sha} for cluster, sha in document.sealing_certificates.items()}
    for secret in secrets:
        if secret.cluster not in document.sealing_certificates:
            recorded = {r.get("certificate_sha256", "") for k, r in document.sealed.items() if k.startswith(secret.prefix)}
            trusted.setdefault(secret.cluster, set()).update(recorded - {""})
    return trusted


def _certificate(secret: SecretToSeal, document: StateDocument, warnings: list[str]) -> tuple[SealingCertificate, StateDocument]:
    if secret.certificate is not None:
        return load_certificate(secret.certificate.read_bytes(), origin=str(secret.certificate)), document
    warnings.append(DEV_SEALING_WARNING.format(cluster=secret.cluster))
    if "certificate" not in document.sealing:
        key_pem, cert_pem = generate_development_keypair()
        document = replace(document, sealing={"private_key": key_pem.decode(), "certificate": cert_pem.decode()})
    return load_certificate(document.sealing["certificate"].encode(), origin="development sealing certificate"), document
