"""Passthrough exposure through the Istio ingress gateway: NVFlare's TLS is never terminated by the mesh.

The gateway's own LoadBalancer Service carries the NVFlare ports, the Gateway listens with protocol TCP,
the VirtualService routes each port to the server Service's FQDN (a short name broke routing in the
reference architecture), and policies let the gateway pods accept and forward those ports only.
"""

from __future__ import annotations

from typing import Any

from fedgen.render.layout import GATEWAY_NAMESPACE, GATEWAY_POD_LABELS, MANAGED_BY, gateway_object_name, server_fqdn
from fedgen.spec.model import Federation

Obj = dict[str, Any]
OPEN_RANGES = ("0.0.0.0/0", "::/0")


def _meta(fed: Federation) -> Obj:
    return {"name": gateway_object_name(fed), "namespace": GATEWAY_NAMESPACE, "labels": dict(MANAGED_BY)}


def _named_ports(fed: Federation) -> list[tuple[str, int]]:
    return [("tcp-flport", fed.server.fl_port), ("tcp-adminport", fed.server.admin_port)]


def gateway_service(fed: Federation) -> Obj:
    spec: Obj = {
        "type": "LoadBalancer",
        # Keeps the client address, so the NetworkPolicy below can match the allowed source ranges.
        "externalTrafficPolicy": "Local",
        "selector": dict(GATEWAY_POD_LABELS),
        "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP", "appProtocol": "tcp"} for n, p in _named_ports(fed)],
    }
    if fed.server.load_balancer_source_ranges:
        spec["loadBalancerSourceRanges"] = list(fed.server.load_balancer_source_ranges)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(fed), "spec": spec}


def gateway(fed: Federation) -> Obj:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": _meta(fed),
        "spec": {
            "selector": {"istio": GATEWAY_POD_LABELS["istio"]},
            "servers": [{"port": {"number": p, "name": n, "protocol": "TCP"}, "hosts": ["*"]} for n, p in _named_ports(fed)],
        },
    }


def virtual_service(fed: Federation) -> Obj:
    host = server_fqdn(fed)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(fed),
        "spec": {
            "hosts": ["*"],
            "gateways": [f"{GATEWAY_NAMESPACE}/{gateway_object_name(fed)}"],
            "tcp": [{"match": [{"port": p}], "route": [{"destination": {"host": host, "port": {"number": p}}}]} for _, p in _named_ports(fed)],
        },
    }


def gateway_authorization(fed: Federation) -> Obj:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": _meta(fed),
        "spec": {
            "action": "ALLOW",
            "selector": {"matchLabels": {"istio": GATEWAY_POD_LABELS["istio"]}},
            "rules": [{"to": [{"operation": {"ports": [str(p) for _, p in _named_ports(fed)]}}]}],
        },
    }


def gateway_network_policy(fed: Federation) -> Obj:
    ranges = fed.server.load_balancer_source_ranges or OPEN_RANGES
    ports = [{"protocol": "TCP", "port": p} for _, p in _named_ports(fed)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(fed),
        "spec": {
            "podSelector": {"matchLabels": dict(GATEWAY_POD_LABELS)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": c}} for c in ranges], "ports": ports}],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": fed.server.tenant}},
                            "podSelector": {"matchLabels": {"run": fed.server.workload_name}},
                        }
                    ],
                    "ports": ports,
                }
            ],
        },
    }


def ingress_objects(fed: Federation) -> dict[str, list[Obj]]:
    return {
        "service.yaml": [gateway_service(fed)],
        "gateway.yaml": [gateway(fed)],
        "virtual-service.yaml": [virtual_service(fed)],
        "authorization-policy.yaml": [gateway_authorization(fed)],
        "network-policy.yaml": [gateway_network_policy(fed)],
    }
