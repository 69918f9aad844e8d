"""What the mesh rules (mesh.py, mesh_bypass.py) look at for each NVFlare server: the objects of its sync root shared by all of
its servers (RootObjects) and the server's own view of them (Ctx), found once per validation (contexts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from functools import cached_property
from typing import Any

from fedgen.validate.k8s import as_dict, as_list, ports_list, resolve_host, selected_pods, services, to_int
from fedgen.validate.model import KObject, Model, SyncRoot
from fedgen.validate.nvflare import NvflareServer, find_servers

EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"


class RootObjects:
    """What every server of one sync root shares, looked up once per validation (contexts): its Services (in build order),
    the Gateway servers listening on each port, and the Services of each Gateway's pods. Without it the
    rules compare every server's ports with every Gateway and Service of the root: quadratic in federations."""

    def __init__(self, root: SyncRoot) -> None:
        self.root = root
        self.objects = list(root.objects)
        self.svcs = services(self.objects)
        self._gateway_services: dict[int, list[KObject]] = {}
        self._carriers: set[int] | None = None
        self._listening: dict[int, list[tuple[KObject, int, dict[str, Any]]]] = defaultdict(list)
        for gw in root.of("networking.istio.io", "Gateway"):
            for i, srv in enumerate(as_list(gw.spec.get("servers"))):
                if isinstance(srv, dict):
                    number = to_int(as_dict(srv.get("port")).get("number"))
                    if number is not None:
                        self._listening[number].append((gw, i, srv))

    def gateway_servers(self, port: int) -> list[tuple[KObject, int, dict[str, Any]]]:
        return self._listening.get(port, [])

    def gateway_carriers(self) -> set[int]:
        """id() of every Service of any Gateway's pods."""
        if self._carriers is None:
            self._carriers = {id(svc) for gw in self.root.of("networking.istio.io", "Gateway") for svc in self.gateway_services(gw)}
        return self._carriers

    def gateway_services(self, gw: KObject) -> list[KObject]:
        """Services whose selector picks the same pods as the Gateway's selector (the shared labels agree)."""
        found = self._gateway_services.get(id(gw))
        if found is None:
            wanted = {str(k): str(v) for k, v in as_dict(gw.spec.get("selector")).items()}
            found = []
            for svc in self.svcs:
                selector = {str(k): str(v) for k, v in as_dict(svc.spec.get("selector")).items()}
                shared = set(wanted) & set(selector)
                if shared and all(wanted[k] == selector[k] for k in shared):
                    found.append(svc)
            self._gateway_services[id(gw)] = found
        return found


class Ctx:
    """One NVFlare server and the objects of the sync root it is built in."""

    def __init__(self, shared: RootObjects, server: NvflareServer) -> None:
        self.shared = shared
        self.objects = shared.objects
        self.server = server
        self.template = server.template
        self.svcs = shared.svcs
        self.service = next(
            (s for s in self.svcs if s.namespace == server.namespace and s.name == server.name),
            next((s for s in self.svcs if self.template in selected_pods(s, [self.template])), None),
        )

    def of(self, group: str, kind: str) -> tuple[KObject, ...]:
        return self.shared.root.of(group, kind)

    @property
    def gateways(self) -> tuple[KObject, ...]:
        return self.of("networking.istio.io", "Gateway")

    def gateway_servers(self, port: int) -> Iterator[tuple[KObject, int, dict[str, Any]]]:
        return iter(self.shared.gateway_servers(port))

    def gateway_services(self, gw: KObject) -> list[KObject]:
        return self.shared.gateway_services(gw)

    def gateway_pod_labels(self, gw: KObject) -> dict[str, str]:
        labels = {str(k): str(v) for k, v in as_dict(gw.spec.get("selector")).items()}
        for svc in self.gateway_services(gw):
            labels.update({str(k): str(v) for k, v in as_dict(svc.spec.get("selector")).items()})
        return labels

    def virtual_services(self, gw: KObject) -> list[KObject]:
        out = []
        for vs in self.of("networking.istio.io", "VirtualService"):
            bound = [str(g) for g in as_list(vs.spec.get("gateways"))]
            if f"{gw.namespace}/{gw.name}" in bound or (gw.name in bound and vs.namespace == gw.namespace):
                out.append(vs)
        return out

    def destination_rules(self) -> list[KObject]:
        if self.service is None:
            return []
        return [
            dr
            for dr in self.of("networking.istio.io", "DestinationRule")
            if resolve_host(str(dr.spec.get("host", "")), dr.namespace, [self.service]) is self.service
        ]

    @cached_property
    def bypass(self) -> bool:
        if ports_list(self.template.annotations.get(EXCLUDE_INBOUND)):
            return True
        return any(svc.spec.get("type") == "LoadBalancer" and svc.namespace == self.server.namespace for svc in self.load_balancers())

    def load_balancers(self) -> list[KObject]:
        return [s for s in self.svcs if s.spec.get("type") == "LoadBalancer" and self.template in selected_pods(s, [self.template])]

    def anchor(self) -> tuple[KObject, str]:
        """Where to report a missing piece: the server Service, else the workload."""
        if self.service is not None:
            return self.service, "/spec/ports"
        return self.template.owner, self.template.ptr("spec", "containers")


# The contexts of the sync roots last asked about: every mesh rule of one validation walks the same servers,
# and finding them (fed_server.json parsed, Services matched) once per rule cost more than the rules.
_LAST: tuple[tuple[SyncRoot, ...], tuple[Ctx, ...]] = ((), ())


def contexts(model: Model) -> Iterator[Ctx]:
    global _LAST
    roots = model.sync_roots
    if len(roots) != len(_LAST[0]) or any(a is not b for a, b in zip(roots, _LAST[0])):
        found = []
        for root in roots:
            shared = RootObjects(root)
            found += [Ctx(shared, server) for server in find_servers(shared.objects) if server.ports]
        _LAST = (roots, tuple(found))
    return iter(_LAST[1])


def dr_mode(dr: KObject, port: int) -> tuple[str | None, str]:
    """Effective tls.mode of a DestinationRule for a port, and the pointer where it is set."""
    policy = as_dict(dr.spec.get("trafficPolicy"))
    for i, setting in enumerate(as_list(policy.get("portLevelSettings"))):
        setting = as_dict(setting)
        if to_int(as_dict(setting.get("port")).get("number")) == port and "tls" in setting:
            level = as_dict(setting.get("tls")).get("mode")
            return (str(level) if level else None), f"/spec/trafficPolicy/portLevelSettings/{i}/tls/mode"
    mode = as_dict(policy.get("tls")).get("mode")
    return (str(mode) if mode else None), "/spec/trafficPolicy/tls/mode"
