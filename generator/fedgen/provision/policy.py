"""Which participants get a new certificate, and why: the re-issue policy. Pure: no NVFlare, no I/O.

Per participant the state records the inputs its certificate was issued for (`StateDocument.participants`):
`type` and `org` for everyone, `role` for admins, `host_names` for the server (default host first). A
participant gets a new key and certificate when it has no cert.json entry, when it has no record, or when its
record differs from the spec. NVFlare alone gets these cases wrong, hence the records:

- server host names (default_host / host_names, the certificate's SAN) change: NVFlare silently keeps the old
  server.crt. Its entry is left out of the seed, so server.crt (only) is re-issued.
- an admin's role changes: NVFlare fails ("previous role is ..."). That admin's entry is left out of the seed,
  so its certificate (only) is re-issued with the new role.
- a participant's org changes (the certificate's O): NVFlare keeps the old certificate; it is re-issued.
- a participant is added: only its certificate is issued; every other cert.json entry stays byte for byte.
- a participant is removed: its cert.json entry and record are dropped from the returned document, so no
  later render can hand out its kit again. That is all fedgen can do: NVFlare has no revocation list, so the
  removed participant's existing kit stays valid (chains to the root CA) until its certificate expires or the
  root CA is replaced.

Participants that keep a valid certificate and whose kit is not asked for are left out of the NVFlare project
(their entries are carried over unchanged): NVFlare loads every stored private key with cryptography's full
RSA key check, which costs about as much as generating one (~45 ms), changed or not. The server is always in
the project (NVFlare requires it); its kit does not depend on which clients are listed (tested).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fedgen.errors import InputError
from fedgen.provision.roster import ROOT_CERT, ROOT_KEYS, ROOT_PRI_KEY, is_entry
from fedgen.state.document import StateDocument

if TYPE_CHECKING:
    from fedgen.spec.model import Federation

# NVFlare truncates a longer server name (the certificate CN), which would rename the server's kit.
MAX_CN_LENGTH = 64


@dataclass(frozen=True)
class Issuance:
    """What one provisioning call issues and reuses."""

    names: tuple[str, ...]  # server, sites, admins: spec order
    server: str
    records: dict[str, dict[str, Any]]  # per participant, the inputs its certificate depends on
    wanted: frozenset[str]  # whose kits are asked for
    reusable: frozenset[str]  # who keeps the certificate the state holds
    seed: dict[str, Any]  # cert.json to start from: the root CA (when there is one) and every kept entry

    @property
    def to_issue(self) -> tuple[str, ...]:
        """Who gets a new certificate, spec order."""
        return tuple(n for n in self.names if n not in self.reusable)

    @property
    def issued(self) -> tuple[str, ...]:
        return tuple(sorted(self.to_issue))

    @property
    def in_project(self) -> list[str]:
        """Who NVFlare must see to issue the new certificates and build the kits asked for."""
        return [n for n in self.names if n == self.server or n in self.wanted or n not in self.reusable]


def plan(federation: Federation, document: StateDocument, kits_for: Iterable[str] | None) -> Issuance:
    """The issuance for `federation` from `document`; raises InputError for unusable input."""
    records = _records(federation)
    names = tuple(records)
    wanted = _wanted(names, kits_for)
    check_names(federation)
    old_cert = document.nvflare_cert
    if document.project is not None and document.project != federation.name and old_cert:
        raise InputError(f"the state belongs to NVFlare project {document.project!r}, not {federation.name!r}")
    has_ca = bool(old_cert.get(ROOT_CERT))
    if has_ca and not old_cert.get(ROOT_PRI_KEY):
        raise InputError("the state holds a root CA certificate but not its private key")
    reusable = frozenset(n for n in names if has_ca and is_entry(old_cert.get(n)) and document.participants.get(n) == records[n])
    seed: dict[str, Any] = {}
    if has_ca:
        seed = {k: old_cert[k] for k in ROOT_KEYS} | {n: old_cert[n] for n in names if n in reusable}
    return Issuance(names=names, server=federation.server.name, records=records, wanted=frozenset(wanted), reusable=reusable, seed=seed)


def _records(federation: Federation) -> dict[str, dict[str, Any]]:
    """Per participant, the inputs its certificate depends on (what StateDocument.participants records)."""
    server = federation.server
    entries: list[tuple[str, dict[str, Any]]] = [(server.name, {"type": "server", "org": server.org, "host_names": list(server.host_names)})]
    entries += [(s.name, {"type": "client", "org": s.org}) for s in federation.sites]
    entries += [(a.name, {"type": "admin", "org": a.org, "role": a.role}) for a in federation.admins]
    records = dict(entries)
    if len(records) != len(entries):
        counts = Counter(name for name, _ in entries)
        dupes = sorted(name for name, count in counts.items() if count > 1)
        raise InputError(f"participant names must be unique: {', '.join(dupes)}")
    return records


def _wanted(names: Iterable[str], kits_for: Iterable[str] | None) -> set[str]:
    if kits_for is None:
        return set(names)
    if isinstance(kits_for, str):
        raise TypeError("kits_for must be an iterable of names, not a string")
    wanted = set(kits_for)
    unknown = sorted(wanted.difference(names))
    if unknown:
        raise InputError(f"no participant named {', '.join(unknown)} in the federation")
    return wanted


def check_names(federation: Federation) -> None:
    """Guards for what NVFlare itself does not check but would break provisioning."""
    project = federation.name
    if not project or project in (".", "..") or "/" in project or "\0" in project:
        # NVFlare uses the project name as a folder name without checking it.
        raise InputError(f"the NVFlare project name {project!r} cannot be a folder name")
    if len(federation.server.name) > MAX_CN_LENGTH:
        raise InputError(f"server name {federation.server.name!r} is longer than {MAX_CN_LENGTH} characters (NVFlare would truncate it)")
    for name in federation.participant_names:
        if name in ROOT_KEYS:
            # NVFlare keeps participants and the root CA in the same cert.json object.
            raise InputError(f"participant name {name!r} is reserved by NVFlare's certificate state")
