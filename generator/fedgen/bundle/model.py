"""What a bundle is about: one participant, the server it dials, and the federation's runtime facts."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from fedgen.errors import InputError
from fedgen.spec.model import Federation

ADMIN_MODULE = "nvflare.fuel.hci.tools.admin"
# Where docker run puts the kit inside the container (the Kubernetes Deployment: fedgen.render.pod.kit_root).
CONTAINER_KIT_PARENT = "/workspace/nvfl"

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


@dataclass(frozen=True)
class Participant:
    name: str
    org: str
    kind: str  # site | admin
    role: str | None = None


@dataclass(frozen=True)
class ServerTarget:
    """The server as a participant dials it.

    dialled: the name in fed_client.json / fed_admin.json (the server's default host, hostNames[0]); it has to
        resolve to the server's address, and the server certificate's CN must be the server name, so the
        name is mapped (/etc/hosts, --add-host, hostAliases), never rewritten in the kit.
    ip: --server-address when it is an IP address; host: when it is a host name.
    """

    server_name: str
    dialled: str
    fl_port: int
    admin_port: int
    ip: str | None
    host: str | None

    @property
    def needs_mapping(self) -> bool:
        """False when the given host name is the dialled name itself (it resolves through DNS already)."""
        return not (self.host is not None and self.host.rstrip(".").lower() == self.dialled.lower())


@dataclass(frozen=True)
class BundleContext:
    federation: Federation
    participant: Participant
    target: ServerTarget
    spec_name: str  # the spec's file name, for headers


def find_participant(fed: Federation, name: str) -> Participant:
    for site in fed.sites:
        if site.name == name:
            return Participant(site.name, site.org, "site")
    for admin in fed.admins:
        if admin.name == name:
            return Participant(admin.name, admin.org, "admin", admin.role)
    if name == fed.server.name:
        raise InputError(f"{name} is the server: its kit reaches the cluster only through `fedgen render` (ConfigMaps and a SealedSecret), never as a bundle")
    sites = ", ".join(s.name for s in fed.sites) or "none"
    admins = ", ".join(a.name for a in fed.admins) or "none"
    raise InputError(f"no site or admin named {name!r} in {fed.name}; sites: {sites}; admins: {admins}")


def server_target(fed: Federation, server_address: str | None) -> ServerTarget:
    ip = host = None
    if server_address is not None:
        value = server_address.strip()
        try:
            ip = str(ipaddress.ip_address(value))
        except ValueError:
            if not _HOSTNAME.fullmatch(value):
                raise InputError(f"--server-address {server_address!r} is neither an IP address nor a host name") from None
            host = value
    s = fed.server
    return ServerTarget(s.name, s.default_host, s.fl_port, s.admin_port, ip, host)


def k8s_slug(name: str) -> str:
    """A DNS-1123 label derived from a participant name (site names may hold '_' and capitals)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40].strip("-")
    return slug or "site"
