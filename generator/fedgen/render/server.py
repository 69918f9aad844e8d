"""The NVFlare server workload: kit ConfigMaps, the key's SealedSecret, Service, hardened Deployment,
DestinationRule, and the mesh policies that let only the ingress gateway reach the NVFlare ports."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fedgen.render import pod
from fedgen.render.layout import (
    GATEWAY_NAMESPACE,
    GATEWAY_POD_LABELS,
    KSA_NAME,
    MANAGED_BY,
    TENANT_NODE_LABEL,
    job_store_root,
    local_configmap_name,
    server_fqdn,
    server_key_secret_name,
    startup_configmap_name,
)
from fedgen.spec import sizing
from fedgen.spec.model import Federation

Obj = dict[str, Any]

SERVER_KEY = f"startup/{pod.SERVER.key}"


def server_labels(fed: Federation) -> dict[str, str]:
    return {"run": fed.server.workload_name}


def _meta(name: str, namespace: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **(labels or {})}}


def max_clients(fed: Federation) -> int:
    """max_num_clients: server.maxClients, else every declared site (by request included), by capacity step."""
    return fed.server.max_clients if fed.server.max_clients is not None else sizing.default_max_clients(len(fed.sites))


def resources_json(fed: Federation, default: bytes) -> bytes:
    """local/resources.json: the kit's default with the job store and snapshots moved to the workspace bucket,
    and the federation's size: the clients the server admits and the jobs it runs at once."""
    doc = json.loads(default)
    root = job_store_root(fed)
    doc["servers"][0]["max_num_clients"] = max_clients(fed)
    doc["snapshot_persistor"]["args"]["storage"]["args"]["root_dir"] = f"{root}/snapshot-storage"
    for component in doc["components"]:
        if component.get("id") == "job_manager":
            component["args"]["uri_root"] = f"{root}/jobs-storage"
        if component.get("id") == "job_scheduler":
            component["args"]["max_jobs"] = fed.server.max_jobs
    return (json.dumps(doc, indent=4) + "\n").encode()


def kit_configmaps(fed: Federation, kit: Mapping[str, bytes]) -> list[Obj]:
    """startup/ (certificates, fed_server.json) and local/ (defaults plus our resources.json), key excluded."""
    startup, local = pod.kit_files(kit, pod.SERVER)
    local["resources.json"] = resources_json(fed, kit["local/resources.json.default"]).decode()
    ns = fed.server.tenant
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(startup_configmap_name(fed), ns, server_labels(fed)), "data": startup},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(local_configmap_name(fed), ns, server_labels(fed)), "data": dict(sorted(local.items()))},
    ]


def is_bypass(fed: Federation) -> bool:
    return fed.server.exposure == "loadbalancer"


def service(fed: Federation) -> Obj:
    """The Service named like the server participant: ClusterIP behind the gateway, or the LoadBalancer
    clients dial directly in bypass mode (then limited to loadBalancerSourceRanges)."""
    s = fed.server
    spec: Obj = {
        "type": "ClusterIP",
        "selector": server_labels(fed),
        "ports": [
            {"name": "tcp-flport", "port": s.fl_port, "targetPort": "tcp-flport", "protocol": "TCP", "appProtocol": "tcp"},
            {"name": "tcp-adminport", "port": s.admin_port, "targetPort": "tcp-adminport", "protocol": "TCP", "appProtocol": "tcp"},
        ],
    }
    if is_bypass(fed):
        # Local keeps the client address, so the NetworkPolicy can match the allowed source ranges.
        spec.update(type="LoadBalancer", externalTrafficPolicy="Local")
        if s.load_balancer_source_ranges:
            spec["loadBalancerSourceRanges"] = list(s.load_balancer_source_ranges)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(s.name, s.tenant, server_labels(fed)), "spec": spec}


def compute_resources(fed: Federation) -> dict[str, str]:
    """cpu and memory of the server container (request = limit): server.resources, else sized for the
    federation (fedgen.spec.sizing; docs/sizing.md)."""
    s = fed.server
    memory = s.resources.memory or sizing.quantity_mib(sizing.default_memory_mib(len(fed.sites), s.max_jobs))
    return {"cpu": s.resources.cpu or sizing.DEFAULT_CPU, "memory": memory}


def deployment(fed: Federation, *, digest: str) -> Obj:
    s = fed.server
    compute = compute_resources(fed)
    return pod.deployment(
        pod.NvflarePod(
            role=pod.SERVER,
            participant=s.name,
            org=s.org,
            image=fed.image,
            name=s.workload_name,
            namespace=s.tenant,
            labels={**MANAGED_BY, **server_labels(fed)},
            selector=server_labels(fed),
            startup_configmap=startup_configmap_name(fed),
            local_configmap=local_configmap_name(fed),
            key_secret=server_key_secret_name(fed),
            kit_digest=digest,
            requests=compute,
            limits=compute,
            kit_gi=pod.SERVER_KIT_GI,
            ports={"tcp-flport": s.fl_port, "tcp-adminport": s.admin_port},
            workspace_bucket=fed.workspace.bucket_name,
            service_account=KSA_NAME,
            mesh_annotations=pod.server_mesh_annotations(ports=(s.fl_port, s.admin_port), bypass=is_bypass(fed)),
            node_label=(TENANT_NODE_LABEL, s.tenant),
        )
    )


def destination_rule(fed: Federation) -> Obj:
    """Gateway -> server rides the mesh's mTLS tunnel; NVFlare's own TLS travels inside it untouched.

    In bypass mode in-mesh callers must not wrap the excluded ports in mesh mTLS (auto-mTLS would), so
    TLS origination is disabled on exactly those ports.
    """
    traffic: Obj = {"tls": {"mode": "ISTIO_MUTUAL"}}
    if is_bypass(fed):
        traffic["portLevelSettings"] = [{"port": {"number": int(p)}, "tls": {"mode": "DISABLE"}} for p in _ports(fed)]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(fed.server.name, fed.server.tenant),
        "spec": {"host": server_fqdn(fed), "trafficPolicy": traffic},
    }


def peer_authentication(fed: Federation) -> Obj:
    """Bypass mode: the mesh does not demand its own mTLS on the NVFlare container ports."""
    s = fed.server
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": _meta(s.workload_name, s.tenant),
        "spec": {
            "selector": {"matchLabels": server_labels(fed)},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {p: {"mode": "DISABLE"} for p in _ports(fed)},
        },
    }


def client_network_policy(fed: Federation) -> Obj:
    """Bypass mode: excluded ports skip mesh authorization, so only this policy limits who connects."""
    s = fed.server
    ranges = s.load_balancer_source_ranges or ("0.0.0.0/0", "::/0")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(f"{s.workload_name}-allow-clients", s.tenant),
        "spec": {
            "podSelector": {"matchLabels": server_labels(fed)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": c}} for c in ranges],
                    "ports": [{"protocol": "TCP", "port": s.fl_port}, {"protocol": "TCP", "port": s.admin_port}],
                }
            ],
        },
    }


def _ports(fed: Federation) -> list[str]:
    return [str(fed.server.fl_port), str(fed.server.admin_port)]


def gateway_only_authorization(fed: Federation) -> list[Obj]:
    """One ALLOW rule (gateway namespace -> NVFlare ports) and a DENY for every other source on those ports.

    The DENY is needed because the tenant's same-namespace ALLOW would otherwise open the ports to any pod
    of the tenant.
    """
    s = fed.server
    selector = {"matchLabels": server_labels(fed)}
    return [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta(f"{s.workload_name}-allow-gateway", s.tenant),
            "spec": {
                "action": "ALLOW",
                "selector": selector,
                "rules": [{"from": [{"source": {"namespaces": [GATEWAY_NAMESPACE]}}], "to": [{"operation": {"ports": _ports(fed)}}]}],
            },
        },
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": _meta(f"{s.workload_name}-deny-non-gateway", s.tenant),
            "spec": {
                "action": "DENY",
                "selector": selector,
                "rules": [{"from": [{"source": {"notNamespaces": [GATEWAY_NAMESPACE]}}], "to": [{"operation": {"ports": _ports(fed)}}]}],
            },
        },
    ]


def gateway_only_network_policy(fed: Federation) -> Obj:
    s = fed.server
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(f"{s.workload_name}-allow-gateway", s.tenant),
        "spec": {
            "podSelector": {"matchLabels": server_labels(fed)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": GATEWAY_NAMESPACE}},
                            "podSelector": {"matchLabels": dict(GATEWAY_POD_LABELS)},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": s.fl_port}, {"protocol": "TCP", "port": s.admin_port}],
                }
            ],
        },
    }


def sealed_key_manifest(fed: Federation, encrypted: Mapping[str, str], scope: str) -> Obj:
    from fedgen.seal.manifest import sealed_secret_manifest

    return sealed_secret_manifest(
        name=server_key_secret_name(fed),
        namespace=fed.server.tenant,
        scope=scope,
        encrypted_data=encrypted,
        labels={**MANAGED_BY, **server_labels(fed)},
    )
