"""A site that runs its NVFlare client from the repository on its own GKE cluster.

Its workload lands in that cluster's sync root: a namespace, a ServiceAccount without token, the kit's
public files as ConfigMaps, the client key as a SealedSecret sealed with that cluster's certificate, a
hardened Deployment, and NetworkPolicies allowing DNS and the server's fl port and nothing else. On a
cluster running the reference architecture the site's namespace is one of the platform's tenants: the
namespace, default deny and DNS egress come from the platform and are not rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedgen.render import pod
from fedgen.render.layout import MANAGED_BY
from fedgen.spec.model import Federation, Site

Obj = dict[str, Any]
CLIENT_KEY = f"startup/{pod.CLIENT.key}"
SERVICE_ACCOUNT = "nvflare-client"


def site_dir(site: Site) -> str:
    return f"clusters/{site.cluster}/sites/{site.name}"


def client_key_secret_name(site: Site) -> str:
    return f"nvflare-{site.name}-key"


def _startup_configmap(site: Site) -> str:
    return f"nvflare-{site.name}-startup"


def _local_configmap(site: Site) -> str:
    return f"nvflare-{site.name}-local"


def _labels(site: Site) -> dict[str, str]:
    return {"run": f"nvflare-{site.name}"}


def _meta(name: str, site: Site, **labels: str) -> Obj:
    return {"name": name, "namespace": site.namespace, "labels": {**MANAGED_BY, **labels}}


def site_objects(fed: Federation, site: Site, kit: Mapping[str, bytes], sealed_key: Obj) -> dict[str, list[Obj]]:
    """File name (in the site's folder) -> objects."""
    ns = site.namespace
    startup, local = pod.kit_files(kit, pod.CLIENT)
    platform = _on_platform(fed, site)
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT, site), "automountServiceAccountToken": False}
    configmaps = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(_startup_configmap(site), site, **_labels(site)), "data": startup},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(_local_configmap(site), site, **_labels(site)), "data": local},
    ]
    digest = pod.kit_digest(configmaps, sealed_key["spec"]["encryptedData"])
    objects: dict[str, list[Obj]] = {
        "service-account.yaml": [service_account],
        "configmaps.yaml": configmaps,
        "sealed-secret.yaml": [sealed_key],
        "deployment.yaml": [_deployment(fed, site, digest)],
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


def _deployment(fed: Federation, site: Site, digest: str) -> Obj:
    ip = fed.server.external_ip
    return pod.deployment(
        pod.NvflarePod(
            role=pod.CLIENT,
            participant=site.name,
            org=site.org,
            image=fed.image,
            name=f"nvflare-{site.name}",
            namespace=site.namespace,
            labels={**MANAGED_BY, **_labels(site)},
            selector=_labels(site),
            startup_configmap=_startup_configmap(site),
            local_configmap=_local_configmap(site),
            key_secret=client_key_secret_name(site),
            kit_digest=digest,
            requests=pod.CLIENT_REQUESTS,
            limits=pod.CLIENT_LIMITS,
            kit_gi=pod.CLIENT_KIT_GI,
            service_account=SERVICE_ACCOUNT,
            # On the reference architecture the platform injects a mesh sidecar into the tenant's pods.
            mesh_annotations=pod.client_mesh_annotations(fl_port=fed.server.fl_port) if _on_platform(fed, site) else {},
            # The certificate's CN is the server name, so the client must dial that name: map it here.
            host_aliases={ip: (fed.server.default_host,)} if ip else {},
        )
    )


def _network_policies(fed: Federation, site: Site) -> list[Obj]:
    ip = fed.server.external_ip
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
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny-all", site),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("allow-egress-dns", site),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
        server_egress,
    ]
