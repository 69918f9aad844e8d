"""What NVFlare is given and what it keeps: the roster of a project, and the vocabulary of its cert.json.

A Roster is plain data (JSON-able), so worker processes get it as it is and kit records can hash it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # workers import this module: keep the spec loader (jsonschema, ruamel) out of them
    from fedgen.spec.model import Federation

# Keys of NVFlare's cert.json that are not participants (CtxKey.ROOT_CERT / ROOT_PRI_KEY in nvflare.lighter).
ROOT_CERT = "root_cert"
ROOT_PRI_KEY = "root_pri_key"
ROOT_KEYS = (ROOT_CERT, ROOT_PRI_KEY)
_ENTRY_CERT = "cert"
_ENTRY_PRI_KEY = "pri_key"


def is_entry(value: object) -> bool:
    """Whether a cert.json value is a participant's certificate and key."""
    return isinstance(value, dict) and bool(value.get(_ENTRY_CERT)) and bool(value.get(_ENTRY_PRI_KEY))


@dataclass(frozen=True)
class Roster:
    """What NVFlare's Project is built from."""

    project: str
    server: tuple[str, str, int, int, str, tuple[str, ...]]  # name, org, fl port, admin port, default host, hosts
    members: tuple[tuple[str, str, str, str | None], ...]  # (client | admin, name, org, role), spec order

    @property
    def server_name(self) -> str:
        return self.server[0]

    @classmethod
    def of(cls, federation: Federation) -> Roster:
        s = federation.server
        members: list[tuple[str, str, str, str | None]] = [("client", x.name, x.org, None) for x in federation.sites]
        members += [("admin", a.name, a.org, a.role) for a in federation.admins]
        return cls(
            project=federation.name,
            server=(s.name, s.org, s.fl_port, s.admin_port, s.default_host, tuple(s.host_names)),
            members=tuple(members),
        )

    def to_json(self) -> dict[str, Any]:
        return {"project": self.project, "server": list(self.server), "members": [list(m) for m in self.members]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Roster:
        name, org, fl_port, admin_port, default_host, hosts = data["server"]
        return cls(
            project=str(data["project"]),
            server=(str(name), str(org), int(fl_port), int(admin_port), str(default_host), tuple(str(h) for h in hosts)),
            members=tuple((str(k), str(n), str(o), None if r is None else str(r)) for k, n, o, r in data["members"]),
        )
