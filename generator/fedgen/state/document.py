"""The state document: plain JSON with sorted keys, so equal state is equal bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fedgen.errors import InputError
from fedgen.untrusted import loads_json

FORMAT = 1


@dataclass
class StateDocument:
    """Everything secret fedgen keeps.

    nvflare_cert: NVFlare's own cert.json content (root CA and every participant's cert and key).
    participants: per participant, the inputs its certificate was issued for (type, org, role, host names),
        so a render can tell which certificates must be re-issued.
    sealing: the development sealing key pair, when the spec names no sealing certificate.
    sealing_certificates: per cluster, the SHA-256 (hex, of the DER certificate) of the sealing certificate
        renders seal to; a render never seals to another one unless told to (--accept-sealing-cert).
    sealed: per sealed value (namespace/name/key), digests of the plaintext, the certificate and the
        ciphertext, so unchanged secrets keep their ciphertext byte for byte.
    enrolled: per site enrolled by request (fedgen enroll approve), its certificate and the digests of
        the request and signed files. Never a key: those sites keep theirs.
    kits: the startup kits the last render built, keyed by what they are made from (fedgen.provision.kitcache),
        so a render that issues nothing needs no NVFlare run.
    offboarded: per participant removed from the spec since the current root CA was made, its kind and the
        certificate it was last issued (public, never a key): NVFlare checks no revocation, so fedgen keeps
        saying who still holds a valid certificate (fedgen.certs.offboarding).
    server: what the last render took from the spec about the server that no kit holds: external_address (the
        address sites map the server's name to; null when unset), so the next render can tell who must act.
    """

    project: str | None = None
    nvflare_cert: dict[str, Any] = field(default_factory=dict)
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    sealing: dict[str, str] = field(default_factory=dict)
    sealing_certificates: dict[str, str] = field(default_factory=dict)
    sealed: dict[str, dict[str, str]] = field(default_factory=dict)
    enrolled: dict[str, dict[str, str]] = field(default_factory=dict)
    kits: dict[str, dict[str, Any]] = field(default_factory=dict)
    offboarded: dict[str, dict[str, str]] = field(default_factory=dict)
    server: dict[str, str | None] = field(default_factory=dict)

    def require_project(self, federation: str, where: str) -> None:
        """Refuse a state that belongs to another federation (InputError naming both)."""
        if self.project not in (None, federation):
            raise InputError(f"state {where} belongs to federation {self.project!r}, not {federation!r}; pass --state for this one")

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "project": self.project,
            "nvflare_cert": self.nvflare_cert,
            "participants": self.participants,
            "sealing": self.sealing,
            "sealed": self.sealed,
        }
        if self.sealing_certificates:  # absent until a render seals, so older states stay byte-identical
            doc["sealing_certificates"] = self.sealing_certificates
        if self.enrolled:  # absent until a site enrolls, so older states stay byte-identical
            doc["enrolled"] = self.enrolled
        if self.kits:
            doc["kits"] = self.kits
        if self.offboarded:  # absent until a participant is removed, so older states stay byte-identical
            doc["offboarded"] = self.offboarded
        if self.server:  # absent until a render records it, so older states stay byte-identical
            doc["server"] = self.server
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> StateDocument:
        try:
            doc = loads_json(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{origin}: state is not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"{origin}: not a fedgen state document of format {FORMAT}")
        sections = {name: _section(doc, name, origin) for name in SECTIONS}
        return cls(project=doc.get("project"), **sections)


# The document's sections: each a JSON object (a damaged state with another type is refused, not a crash).
SECTIONS = ("nvflare_cert", "participants", "sealing", "sealing_certificates", "sealed", "enrolled", "kits", "offboarded", "server")


def _section(doc: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    value = doc.get(name) or {}
    if not isinstance(value, dict):
        raise InputError(f"{origin}: damaged state: {name} is not a JSON object; restore the state from a backup")
    return dict(value)
