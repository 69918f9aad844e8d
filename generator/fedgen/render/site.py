"""A site that runs its NVFlare client from the repository on its own GKE cluster.

Its workload lands in that cluster's sync root: a namespace, a ServiceAccount without token, the kit's
public files as ConfigMaps, the client key as a SealedSecret sealed with that cluster's certificate, a
hardened Deployment, and NetworkPolicies allowing DNS and the server's fl port and nothing else. On a
cluster running the reference architecture the site's namespace is one of the platform's tenants: the
namespace, default deny and DNS egress come from the platform and are not rendered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from fedgen.render.layout import MANAGED_BY
from fedgen.spec.model import Federation, Site
from fedgen.render.hardening import PROCESS_ENV, container_security_context, pod_security_context

Obj = dict[str, Any]
CLIENT_MODULE = "nvflare.private.fed.app.client.client_train"
CLIENT_KEY = "startup/client.key"
UNUSED_KIT_FILES = frozenset({"readme.txt", "startup/start.sh", "startup/sub_start.sh", "startup/stop_fl.sh"})
# NVFlare writes logs and job folders below the kit root: an emptyDir, with startup/ and local/ inside.
KIT_ROOT = "/var/nvflare/kit"


def site_dir(site: Site) -> str:
    return f"clusters/{site.cluster}/sites/{site.name}"


def key_secret_name(site: Site) -> str:
    return f"nvflare-{site.name}-key"


def _labels(site: Site) -> dict[str, str]:
    return {"run": f"nvflare-{site.name}"}


def _meta(name: str, site: Site, **labels: str) -> Obj:
    return {"name": name, "namespace": site.namespace, "labels": {**MANAGED_BY, **labels}}


def _server_ip(fed: Federation) -> str | None:
    address = fed.server.external_address
    if address is None:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def site_objects(fed: Federation, site: Site, kit: Mapping[str, bytes], sealed_key: Obj) -> dict[str, list[Obj]]:
    """File name (in the site's folder) -> objects."""
    ns = site.namespace
    startup = {p.split("/", 1)[1]: kit[p].decode() for p in sorted(kit) if p.startswith("startup/") and p != CLIENT_KEY and p not in UNUSED_KIT_FILES}
    local = {p.split("/", 1)[1]: kit[p].decode() for p in sorted(kit) if p.startswith("local/")}
    platform = _on_platform(fed, site)
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("nvflare-client", site), "automountServiceAccountToken": False}
    configmaps = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"nvflare-{site.name}-startup", site, **_labels(site)), "data": startup},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"nvflare-{site.name}-local", site, **_labels(site)), "data": local},
    ]
    objects = {
        "service-account.yaml": [service_account],
        "configmaps.yaml": configmaps,
        "sealed-secret.yaml": [sealed_key],
        "deployment.yaml": [_deployment(fed, site)],
        "network-policies.yaml": _network_policies(fed, site),
    }
    if not platform:  # the reference architecture creates the namespace of each tenant it knows (refarch)
        objects["namespace.yaml"] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(MANAGED_BY)}}]
    return objects


def _on_platform(fed: Federation, site: Site) -> bool:
    """The site's cluster runs the reference architecture: its namespace is one of the platform's tenants
    (namespace, default-deny and DNS policies, mesh sidecar injection come from the platform)."""
    assert site.cluster is not None
    return fed.cluster(site.cluster).on_reference_architecture


def _deployment(fed: Federation, site: Site) -> Obj:
    container: Obj = {
        "name": "nvflare-client",
        "image": fed.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/usr/local/bin/python3"],
        "args": ["-u", "-m", CLIENT_MODULE, "-m", KIT_ROOT, "-s", "fed_client.json", "--set", "secure_train=true", f"uid={site.name}", "config_folder=config", f"org={site.org}"],
        "env": list(PROCESS_ENV),
        "resources": {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "2Gi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "kit", "mountPath": KIT_ROOT},
            {"name": "startup", "mountPath": f"{KIT_ROOT}/startup", "readOnly": True},
            {"name": "local", "mountPath": f"{KIT_ROOT}/local", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod: Obj = {
        "serviceAccountName": "nvflare-client",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": "kit", "emptyDir": {"sizeLimit": "2Gi"}},
            {
                "name": "startup",
                "projected": {
                    "defaultMode": 0o444,
                    "sources": [
                        {"configMap": {"name": f"nvflare-{site.name}-startup"}},
                        {"secret": {"name": key_secret_name(site), "items": [{"key": "client.key", "path": "client.key", "mode": 0o440}]}},
                    ],
                },
            },
            {"name": "local", "configMap": {"name": f"nvflare-{site.name}-local", "defaultMode": 0o444}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    ip = _server_ip(fed)
    if ip:  # the certificate's CN is the server name, so the client must dial that name: map it here
        pod["hostAliases"] = [{"ip": ip, "hostnames": [fed.server.default_host]}]
    template: Obj = {"labels": {**MANAGED_BY, **_labels(site)}}
    if _on_platform(fed, site):
        # The platform injects a mesh sidecar and its mesh lets pods reach registered hosts only
        # (REGISTRY_ONLY): NVFlare's own mutual TLS to the server goes around the sidecar.
        template["annotations"] = {"traffic.sidecar.istio.io/excludeOutboundPorts": str(fed.server.fl_port)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"nvflare-{site.name}", site, **_labels(site)),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _labels(site)},
            "template": {"metadata": template, "spec": pod},
        },
    }


def _network_policies(fed: Federation, site: Site) -> list[Obj]:
    ip = _server_ip(fed)
    server_peer = [{"ipBlock": {"cidr": f"{ip}/32" if ":" not in ip else f"{ip}/128"}}] if ip else [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    server_egress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta("allow-egress-nvflare-server", site),
        "spec": {
            "podSelector": {"matchLabels": _labels(site)},
            "policyTypes": ["Egress"],
            # Clients dial only the fl port; the admin port is for admins.
            "egress": [{"to": server_peer, "ports": [{"protocol": "TCP", "port": fed.server.fl_port}]}],
        },
    }
    if _on_platform(fed, site):  # default deny and DNS egress are the platform's baseline of the tenant
        return [server_egress]
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta("default-deny-all", site), "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("allow-egress-dns", site),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
            },
        },
        server_egress,
    ]
