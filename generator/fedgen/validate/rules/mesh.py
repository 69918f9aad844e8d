"""FG3xx: the mesh must carry NVFlare's own mutual TLS untouched.

Passthrough (the default exposure): the ingress gateway listens with protocol TCP on the NVFlare ports, its
Service carries them, a VirtualService routes each port by tcp to the server Service's FQDN, a DestinationRule
keeps the gateway -> server hop in the mesh's mTLS tunnel, and authorization lets the gateway (and only it)
reach the ports. In any mode the ports are never declared grpc/http/http2 and never terminated by the mesh.
The bypass exposure (FG311-FG315) is checked in mesh_bypass.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fedgen.validate.authz import Connection, decide, policies_for, rule_matches
from fedgen.validate.finding import ERROR, WARNING
from fedgen.validate.k8s import as_dict, as_list, resolve_target, selected_pods, service_ports, to_int
from fedgen.validate.model import KObject, Model
from fedgen.validate.rule import Hit, Rule, on
from fedgen.validate.rules.mesh_context import Ctx, contexts, dr_mode

SNIFFED = ("grpc", "grpc-web", "http", "http2", "h2c")
TERMINATING_DR_MODES = ("SIMPLE", "MUTUAL")
PASSTHROUGH_TLS_MODES = ("PASSTHROUGH", "AUTO_PASSTHROUGH")
# A namespace no policy can name: stands for "any other namespace of the cluster".
ANY_OTHER_NAMESPACE = "fedgen-any-other-namespace"


def _sniffed(value: Any) -> bool:
    text = str(value or "").lower()
    text = text.removeprefix("kubernetes.io/")
    return any(text == p or text.startswith(p + "-") for p in SNIFFED)


# ---------------------------------------------------------------------------------------------- any mode


def port_declared_http(model: Model) -> Iterator[Hit]:
    for ctx in contexts(model):
        ports = ctx.server.ports
        carriers = ctx.shared.gateway_carriers()
        for svc in ctx.svcs:
            if svc.namespace != ctx.template.namespace and id(svc) not in carriers:
                continue  # selects no pod of the server's namespace and carries no Gateway: not its port
            selects_server: bool | None = None
            for i, port in service_ports(svc):
                # The cheap test first: a gateway Service carries every federation's ports, each server's own
                # reach over all of them would be quadratic in federations.
                sniffed = [key for key in ("name", "appProtocol") if _sniffed(port.get(key))]
                if not sniffed:
                    continue
                if selects_server is None:
                    selects_server = ctx.template in selected_pods(svc, [ctx.template])
                reaches = resolve_target(port, ctx.template) in ports if selects_server else False
                on_gateway = any(svc in ctx.gateway_services(gw) for gw, _, _ in ctx.gateway_servers(to_int(port.get("port")) or -1))
                if not (reaches or on_gateway):
                    continue
                for key in sniffed:
                    yield on(
                        svc,
                        f"/spec/ports/{i}/{key}",
                        f"port {port.get('port')} carries NVFlare's TLS but its {key} {port.get(key)!r} makes Istio parse it as {str(port.get(key)).split('-')[0]}; use a tcp- name and appProtocol tcp",
                    )
        for ptr, cport in ctx.template.container_ports():
            if to_int(cport.get("containerPort")) in ports and _sniffed(cport.get("name")):
                yield on(
                    ctx.template.owner,
                    f"{ptr}/name",
                    f"container port {cport.get('containerPort')} is named {cport.get('name')!r}; NVFlare ports must not be named grpc/http/http2",
                )


def tls_terminated(model: Model) -> Iterator[Hit]:
    for ctx in contexts(model):
        for port in ctx.server.ports:
            for gw, i, srv in ctx.gateway_servers(port):
                protocol = str(as_dict(srv.get("port")).get("protocol", "")).upper()
                tls_mode = str(as_dict(srv.get("tls")).get("mode", "")).upper()
                if protocol == "TCP" or (protocol == "TLS" and tls_mode in PASSTHROUGH_TLS_MODES):
                    continue
                yield on(
                    gw,
                    f"/spec/servers/{i}/port/protocol",
                    f"gateway server on NVFlare port {port} has protocol {protocol or '(none)'}{' tls.mode ' + tls_mode if tls_mode else ''}: the mesh would terminate or parse NVFlare's TLS; use protocol TCP",
                )
                for vs in ctx.virtual_services(gw):
                    for j, route in enumerate(as_list(vs.spec.get("http"))):
                        matches = as_list(as_dict(route).get("match"))
                        if any(to_int(as_dict(m).get("port")) == port for m in matches):
                            yield on(
                                vs, f"/spec/http/{j}", f"http route on NVFlare port {port}: the gateway would parse NVFlare's TLS as HTTP; route it with tcp"
                            )
            for dr in ctx.destination_rules():
                mode, ptr = dr_mode(dr, port)
                if mode in TERMINATING_DR_MODES:
                    yield on(dr, ptr, f"tls.mode {mode} for port {port}: the sidecar would originate its own TLS to NVFlare, which terminates TLS itself")


# --------------------------------------------------------------------------------------------- passthrough


def _passthrough(model: Model) -> Iterator[Ctx]:
    return (ctx for ctx in contexts(model) if not ctx.bypass)


def gateway_server_missing(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        for port in ctx.server.ports:
            if next(ctx.gateway_servers(port), None) is None:
                gateways = ctx.gateways
                obj, ptr = (gateways[0], "/spec/servers") if gateways else ctx.anchor()
                yield on(obj, ptr, f"no Gateway server listens on NVFlare port {port} (protocol TCP) for {ctx.server.name}")


def gateway_service_port_missing(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        for port in ctx.server.ports:
            for gw, i, _ in ctx.gateway_servers(port):
                carriers = ctx.gateway_services(gw)
                if not any(to_int(p.get("port")) == port for svc in carriers for _, p in service_ports(svc)):
                    names = ", ".join(s.ref for s in carriers) or "none in the repo"
                    yield on(
                        gw,
                        f"/spec/servers/{i}/port/number",
                        f"the gateway listens on {port} but no Service of the gateway pods carries port {port} ({names}); clients cannot reach it",
                    )


def _tcp_routes(ctx: Ctx, gw: KObject, port: int) -> Iterator[tuple[KObject, str, str]]:
    """(VirtualService, pointer of the destination host, host) of every tcp route on the port."""
    for vs in ctx.virtual_services(gw):
        for j, route in enumerate(as_list(vs.spec.get("tcp"))):
            route = as_dict(route)
            matches = as_list(route.get("match"))
            if matches and not any(to_int(as_dict(m).get("port")) in (port, None) for m in matches):
                continue
            for k, dest in enumerate(as_list(route.get("route"))):
                host = as_dict(as_dict(dest).get("destination")).get("host")
                if isinstance(host, str):
                    yield vs, f"/spec/tcp/{j}/route/{k}/destination/host", host


def _names_server(ctx: Ctx, host: str) -> bool:
    """Any spelling of the server Service; short ones are FG306's business."""
    name, ns = ctx.server.name or "", ctx.server.namespace
    return host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local")


def virtual_service_route_missing(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        for port in ctx.server.ports:
            for gw, i, _ in ctx.gateway_servers(port):
                if not any(_names_server(ctx, host) for vs, _, host in _tcp_routes(ctx, gw, port)):
                    yield on(
                        gw,
                        f"/spec/servers/{i}",
                        f"no VirtualService bound to {gw.namespace}/{gw.name} routes tcp port {port} to {ctx.server.name}.{ctx.server.namespace}.svc.cluster.local",
                    )


def virtual_service_host_not_fqdn(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        seen: set[tuple[str, str]] = set()
        for port in ctx.server.ports:
            for gw, _, _ in ctx.gateway_servers(port):
                for vs, ptr, host in _tcp_routes(ctx, gw, port):
                    if _names_server(ctx, host) and not host.endswith(".svc.cluster.local") and (vs.ref, ptr) not in seen:
                        seen.add((vs.ref, ptr))
                        yield on(
                            vs,
                            ptr,
                            f"destination host {host!r} is not a fully qualified name; the gateway resolves short names in its own namespace (use {ctx.server.name}.{ctx.server.namespace}.svc.cluster.local)",
                        )


def destination_rule_mtls(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        if ctx.service is None:
            continue
        rules = ctx.destination_rules()
        if not rules:
            yield on(
                ctx.service,
                "",
                f"no DestinationRule for {ctx.service.name}.{ctx.service.namespace}.svc.cluster.local keeps the gateway -> server hop in mesh mTLS (tls.mode ISTIO_MUTUAL)",
            )
            continue
        for dr in rules:
            for port in ctx.server.ports:
                mode, ptr = dr_mode(dr, port)
                if mode == "DISABLE":
                    yield on(
                        dr,
                        ptr,
                        f"tls.mode DISABLE for port {port} in passthrough mode: the server sidecar's STRICT mTLS refuses the gateway's plain connection; use ISTIO_MUTUAL",
                    )


def _denying(policies: list[KObject], conn: Connection) -> tuple[KObject, str] | None:
    for policy in sorted(policies, key=lambda p: p.ref):
        if str(policy.spec.get("action", "ALLOW")) == "DENY":
            for i, rule in enumerate(as_list(policy.spec.get("rules"))):
                if rule_matches(as_dict(rule), conn, "DENY") is True:
                    return policy, f"/spec/rules/{i}"
    allows = sorted((p for p in policies if str(p.spec.get("action", "ALLOW")) == "ALLOW"), key=lambda p: p.ref)
    return (allows[0], "/spec/rules") if allows else None


def authorization_blocks_gateway(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        for port in ctx.server.ports:
            for gw in sorted({gw.ref: gw for gw, _, _ in ctx.gateway_servers(port)}.values(), key=lambda g: g.ref):
                server_side = policies_for(ctx.objects, ctx.server.namespace, ctx.template.labels)
                conn = Connection(gw.namespace, port)
                if decide(server_side, conn) is False:
                    where = _denying(server_side, conn)
                    obj, ptr = where if where else ctx.anchor()
                    yield on(obj, ptr, f"authorization denies the gateway (namespace {gw.namespace}) on NVFlare port {port} of {ctx.template.owner.ref}")
                gateway_side = policies_for(ctx.objects, gw.namespace, ctx.gateway_pod_labels(gw))
                outside = Connection(None, port)
                if decide(gateway_side, outside) is False:
                    where = _denying(gateway_side, outside)
                    obj, ptr = where if where else (gw, "/spec/selector")
                    yield on(obj, ptr, f"authorization on the gateway pods denies clients outside the mesh on NVFlare port {port}")


def authorization_open_beyond_gateway(model: Model) -> Iterator[Hit]:
    for ctx in _passthrough(model):
        policies = policies_for(ctx.objects, ctx.server.namespace, ctx.template.labels)
        for port in ctx.server.ports:
            for source in (ctx.server.namespace, ANY_OTHER_NAMESPACE):
                conn = Connection(source, port)
                if decide(policies, conn) is not True:
                    continue
                allowing = next(
                    (
                        (p, f"/spec/rules/{i}")
                        for p in sorted(policies, key=lambda p: p.ref)
                        if str(p.spec.get("action", "ALLOW")) == "ALLOW"
                        for i, r in enumerate(as_list(p.spec.get("rules")))
                        if rule_matches(as_dict(r), conn, "ALLOW") is True
                    ),
                    (ctx.template.owner, ctx.template.ptr("metadata", "labels")),
                )
                who = f"pods of namespace {source}" if source != ANY_OTHER_NAMESPACE else "pods of any namespace"
                yield on(
                    allowing[0],
                    allowing[1],
                    f"{who} reach NVFlare port {port} directly, not only through the gateway; add a DENY for sources other than the gateway namespace",
                )


# ------------------------------------------------------------------------------------------------- bypass


RULES = (
    Rule(
        "FG301",
        "nvflare-port-declared-http",
        ERROR,
        "NVFlare ports are never named or declared grpc/http/http2 (Istio would parse the TLS stream).",
        "Name the ports tcp-<name> and set appProtocol: tcp.",
        port_declared_http,
    ),
    Rule(
        "FG302",
        "nvflare-tls-terminated",
        ERROR,
        "The mesh never terminates, parses or originates TLS on NVFlare ports.",
        "Use Gateway protocol TCP, tcp routes, and DestinationRule tls.mode ISTIO_MUTUAL (passthrough) or DISABLE (bypass).",
        tls_terminated,
    ),
    Rule(
        "FG303",
        "gateway-server-missing",
        ERROR,
        "Passthrough: a Gateway server listens with protocol TCP on each NVFlare port.",
        "Add a Gateway server {port: {number: <port>, protocol: TCP}} for each port (fedgen render does).",
        gateway_server_missing,
    ),
    Rule(
        "FG304",
        "gateway-service-port-missing",
        ERROR,
        "Passthrough: the gateway pods' Service carries each NVFlare port.",
        "Add the port to the gateway's LoadBalancer Service (fedgen render writes istio-ingress/<tenant>/service.yaml).",
        gateway_service_port_missing,
    ),
    Rule(
        "FG305",
        "virtual-service-route-missing",
        ERROR,
        "Passthrough: a VirtualService bound to the Gateway routes each NVFlare port by tcp to the server.",
        "Add a tcp route matching the port to the server Service's FQDN.",
        virtual_service_route_missing,
    ),
    Rule(
        "FG306",
        "virtual-service-host-not-fqdn",
        ERROR,
        "Passthrough: VirtualService destination hosts are fully qualified (<svc>.<ns>.svc.cluster.local).",
        "Write the destination host as <service>.<namespace>.svc.cluster.local.",
        virtual_service_host_not_fqdn,
    ),
    Rule(
        "FG307",
        "destination-rule-mtls",
        ERROR,
        "Passthrough: a DestinationRule for the server host keeps mesh mTLS (ISTIO_MUTUAL) on the NVFlare ports.",
        "Add a DestinationRule for the server FQDN with trafficPolicy.tls.mode ISTIO_MUTUAL.",
        destination_rule_mtls,
    ),
    Rule(
        "FG308",
        "authorization-blocks-gateway",
        ERROR,
        "Passthrough: AuthorizationPolicies let the gateway reach the NVFlare ports, and clients reach the gateway.",
        "Allow source namespace <gateway namespace> to the NVFlare ports on the server pod, and the ports on the gateway pods.",
        authorization_blocks_gateway,
    ),
    Rule(
        "FG309",
        "authorization-open-beyond-gateway",
        WARNING,
        "Passthrough: only the gateway reaches the NVFlare ports inside the mesh.",
        "Add a DENY policy for sources outside the gateway namespace on the NVFlare ports (fedgen render writes one).",
        authorization_open_beyond_gateway,
    ),
)
