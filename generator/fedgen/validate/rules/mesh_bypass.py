"""FG311-FG315: the bypass exposure (``server.exposure: loadbalancer``; detected when the server pod excludes
inbound ports or a LoadBalancer Service selects it). The sidecar must not intercept NVFlare's ports,
PeerAuthentication and DestinationRule must switch the mesh's mTLS off for them, and NetworkPolicy must limit who
reaches them: NVFlare's own mutual TLS is then the only TLS on the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import as_dict, as_list, label_selector_matches, ports_list, to_int
from fedgen.validate.model import Model
from fedgen.validate.rule import Hit, Rule, on
from fedgen.validate.rules.mesh_context import EXCLUDE_INBOUND, Ctx, contexts, dr_mode

INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def _bypass(model: Model) -> Iterator[Ctx]:
    return (ctx for ctx in contexts(model) if ctx.bypass)


def _annotations_ptr(ctx: Ctx, key: str) -> str:
    return ctx.template.ptr("metadata", "annotations", key) if key in ctx.template.annotations else ctx.template.ptr("metadata")


def bypass_ports_not_excluded(model: Model) -> Iterator[Hit]:
    for ctx in _bypass(model):
        excluded = ports_list(ctx.template.annotations.get(EXCLUDE_INBOUND))
        missing = [p for p in ctx.server.ports if p not in excluded]
        if missing:
            yield on(
                ctx.template.owner,
                _annotations_ptr(ctx, EXCLUDE_INBOUND),
                f"bypass exposure, but {EXCLUDE_INBOUND} does not list {', '.join(map(str, missing))}: the sidecar would intercept NVFlare's TLS",
            )


def bypass_include_defeats(model: Model) -> Iterator[Hit]:
    for ctx in _bypass(model):
        include = ctx.template.annotations.get(INCLUDE_INBOUND)
        if include is None or include.strip() == "*":
            continue
        caught = [p for p in ctx.server.ports if p in ports_list(include)]
        if caught:
            yield on(
                ctx.template.owner,
                _annotations_ptr(ctx, INCLUDE_INBOUND),
                f"{INCLUDE_INBOUND}={include!r} makes the sidecar capture {', '.join(map(str, caught))} (excludeInboundPorts only works while it is '*')",
            )


def bypass_peer_authentication(model: Model) -> Iterator[Hit]:
    for ctx in _bypass(model):
        peers = [
            pa
            for pa in ctx.objects
            if pa.group == "security.istio.io"
            and pa.kind == "PeerAuthentication"
            and pa.namespace == ctx.server.namespace
            and label_selector_matches(pa.spec.get("selector"), ctx.template.labels)
            and pa.spec.get("selector")
        ]
        for port in ctx.server.ports:
            disabled = any(
                str(as_dict(v).get("mode", "")).upper() == "DISABLE"
                for pa in peers
                for k, v in as_dict(pa.spec.get("portLevelMtls")).items()
                if to_int(k) == port
            )
            if not disabled:
                obj, ptr = (
                    (sorted(peers, key=lambda p: p.ref)[0], "/spec/portLevelMtls") if peers else (ctx.template.owner, ctx.template.ptr("metadata", "labels"))
                )
                yield on(obj, ptr, f"bypass exposure needs a PeerAuthentication selecting the server pod with portLevelMtls {port}: DISABLE")


def bypass_destination_rule_tls(model: Model) -> Iterator[Hit]:
    for ctx in _bypass(model):
        if ctx.service is None:
            continue
        rules = ctx.destination_rules()
        for port in ctx.server.ports:
            if not any(dr_mode(dr, port)[0] == "DISABLE" for dr in rules):
                obj, ptr = (rules[0], "/spec/trafficPolicy") if rules else (ctx.service, "")
                yield on(
                    obj,
                    ptr,
                    f"bypass exposure: in-mesh callers of port {port} need a DestinationRule with tls.mode DISABLE for it (auto mTLS would wrap NVFlare's TLS)",
                )


def _open_peer(peer: dict[str, Any]) -> bool:
    block = as_dict(peer.get("ipBlock"))
    if block.get("cidr") in OPEN_CIDRS:
        return True
    return "namespaceSelector" in peer and not as_dict(peer.get("namespaceSelector")) and "podSelector" not in peer


def bypass_ports_unrestricted(model: Model) -> Iterator[Hit]:
    for ctx in _bypass(model):
        names = {str(p.get("name")): to_int(p.get("containerPort")) for _, p in ctx.template.container_ports()}
        policies = [
            np
            for np in ctx.objects
            if np.group == "networking.k8s.io"
            and np.kind == "NetworkPolicy"
            and np.namespace == ctx.server.namespace
            and label_selector_matches(np.spec.get("podSelector"), ctx.template.labels)
            and ("Ingress" in [str(t) for t in as_list(np.spec.get("policyTypes"))] or "policyTypes" not in np.spec)
        ]
        if not policies:
            yield on(
                ctx.template.owner,
                ctx.template.ptr("metadata", "labels"),
                "bypass exposure: no NetworkPolicy limits ingress to the server pod, and excluded ports skip mesh authorization",
            )
            continue
        for port in ctx.server.ports:
            for np in sorted(policies, key=lambda p: p.ref):
                for i, rule in enumerate(as_list(np.spec.get("ingress"))):
                    rule = as_dict(rule)
                    rule_ports = as_list(rule.get("ports"))
                    covers = not rule_ports or any(
                        to_int(as_dict(rp).get("port")) == port or names.get(str(as_dict(rp).get("port"))) == port for rp in rule_ports
                    )
                    peers = as_list(rule.get("from"))
                    if covers and (not peers or any(_open_peer(as_dict(p)) for p in peers)):
                        yield on(
                            np,
                            f"/spec/ingress/{i}",
                            f"bypass exposure: this rule admits any source to excluded NVFlare port {port}, which skips mesh authorization",
                        )


RULES = (
    Rule(
        "FG311",
        "bypass-ports-not-excluded",
        ERROR,
        "Bypass: the server pod excludes both NVFlare ports from sidecar interception.",
        'Set traffic.sidecar.istio.io/excludeInboundPorts: "<fl>,<admin>" on the server pod template.',
        bypass_ports_not_excluded,
    ),
    Rule(
        "FG312",
        "bypass-include-inbound-defeats",
        ERROR,
        "Bypass: includeInboundPorts does not defeat excludeInboundPorts.",
        "Remove traffic.sidecar.istio.io/includeInboundPorts or set it to '*'.",
        bypass_include_defeats,
    ),
    Rule(
        "FG313",
        "bypass-peer-authentication",
        ERROR,
        "Bypass: a PeerAuthentication selects the server pod with portLevelMtls DISABLE on each NVFlare port.",
        "Add a PeerAuthentication with selector = server pod labels and portLevelMtls {<port>: {mode: DISABLE}}.",
        bypass_peer_authentication,
    ),
    Rule(
        "FG314",
        "bypass-destination-rule-tls",
        ERROR,
        "Bypass: a DestinationRule disables TLS origination to the NVFlare ports for in-mesh callers.",
        "Add portLevelSettings with tls.mode DISABLE for each NVFlare port to the server host's DestinationRule.",
        bypass_destination_rule_tls,
    ),
    Rule(
        "FG315",
        "bypass-ports-unrestricted",
        ERROR,
        "Bypass: NetworkPolicy limits who reaches the excluded ports (mesh authorization no longer applies).",
        "Restrict ingress to the NVFlare ports to the sites' CIDRs (server.loadBalancerSourceRanges).",
        bypass_ports_unrestricted,
    ),
)
