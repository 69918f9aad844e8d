"""The address sites must dial, as the cluster gives it, against what their bundles say.

Gateway exposure: the ingress gateway's LoadBalancer Service fedgen renders (istio-ingress/nvflare-<tenant>);
loadbalancer exposure: the server's own Service. Its status.loadBalancer.ingress holds the IP (or host name)
the cloud gave it. Every bundle's fed_client.json dials server.hostNames[0] on the fl port (provisioned from
the spec), so that name must be the address itself or resolve to it.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.render.layout import GATEWAY_NAMESPACE, gateway_object_name
from fedgen.spec.model import Federation
from fedgen.status.model import Check, Problem

Obj = Mapping[str, Any]
Resolver = Callable[[str], "list[str] | None"]  # host name -> addresses; None when it does not resolve
RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class AddressService:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def address_service(fed: Federation) -> AddressService:
    if fed.server.exposure == "gateway":
        return AddressService(GATEWAY_NAMESPACE, gateway_object_name(fed))
    return AddressService(fed.server.tenant, fed.server.name)


def external_address(service: Obj | None) -> str | None:
    """The first LoadBalancer ingress IP (or host name), or None while the cloud has assigned none."""
    for entry in ((service or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
        if isinstance(entry, Mapping) and (entry.get("ip") or entry.get("hostname")):
            return str(entry.get("ip") or entry.get("hostname"))
    return None


def resolve(host: str, timeout: float = RESOLVE_TIMEOUT) -> list[str] | None:
    """The addresses a name resolves to here (the system resolver, bounded by a timeout)."""
    found: list[list[str] | None] = [None]

    def lookup() -> None:
        try:
            found[0] = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})
        except OSError:
            found[0] = None

    worker = threading.Thread(target=lookup, daemon=True)  # a hung resolver must not hold the command
    worker.start()
    worker.join(timeout)
    return found[0]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def address_check(fed: Federation, service: Obj | None, resolver: Resolver = resolve) -> tuple[Check, dict[str, Any]]:
    where = address_service(fed)
    dialled, port = fed.server.default_host, fed.server.fl_port
    address = external_address(service)
    facts: dict[str, Any] = {"address": {"service": str(where), "value": address, "dials": f"{dialled}:{port}", "matches": False}}
    if service is None:
        return Check(
            "address",
            f"Service {where} not on the cluster",
            (Problem(f"the Service sites reach the server through ({where}) is not on the cluster", "see the objects and engine checks"),),
        ), facts
    if address is None:
        return Check("address", f"{where}: no external address yet", (Problem(
            f"Service {where} has no external address yet (LoadBalancer pending)",
            f"wait for the cloud load balancer; `kubectl -n {where.namespace} describe service {where.name}` shows its events",
        ),)), facts  # fmt: skip
    problems = []
    if dialled == address:
        how = "the same"
    elif _is_ip(dialled):
        how = ""
        problems.append(Problem(f"sites dial {dialled}:{port} but the server's address is {address}",
                                f"set server.hostNames[0] to a name for {address}, render, and send the sites new bundles"))  # fmt: skip
    else:
        addresses = resolver(dialled)
        if addresses is None:
            how = ""
            problems.append(Problem(f"sites dial {dialled}:{port}, which does not resolve here; the server's address is {address}",
                                    f"create the DNS record {dialled} -> {address}"))  # fmt: skip
        elif (address in addresses) or (not _is_ip(address) and resolver(address) == addresses):
            how = f"{dialled} resolves to it"
        else:
            how = ""
            problems.append(Problem(f"sites dial {dialled}:{port}, which resolves to {', '.join(addresses)}, not to the server's address {address}",
                                    f"point the DNS record {dialled} at {address}"))  # fmt: skip
    declared = fed.server.external_address
    if declared and declared not in (address, dialled):
        problems.append(Problem(f"server.externalAddress is {declared}, the cluster gave {address}",
                                f"set server.externalAddress to {address} in the spec and render (site clusters map the server's name to it)"))  # fmt: skip
    facts["address"]["matches"] = not problems
    detail = f"{address} via {where}; sites dial {dialled}:{port}" + (f" ({how})" if how else "")
    return Check("address", detail, tuple(problems)), facts
