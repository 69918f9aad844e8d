"""The tenant namespace baseline of the reference architecture, hardened: namespace, KSA, baseline
NetworkPolicies, same-namespace AuthorizationPolicy, node-pool mutators (rendered on standalone clusters
only: the reference architecture provides them), and the storage ServiceEntry (rendered everywhere)."""

from __future__ import annotations

from typing import Any

from fedgen.render.layout import KSA_NAME, MANAGED_BY, TENANT_NODE_LABEL

Obj = dict[str, Any]

METADATA_SERVER = "169.254.169.254/32"
GKE_METADATA_AGENT = ("169.254.169.252/32", "127.0.0.1/32")
PRIVATE_GOOGLE_APIS = "199.36.153.8/30"


def _meta(name: str, namespace: str | None = None, **labels: str) -> Obj:
    meta: Obj = {"name": name, "labels": {**MANAGED_BY, **labels}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _netpol(name: str, namespace: str, spec: Obj) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(name, namespace), "spec": spec}


def _ns_selector(namespace: str) -> Obj:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def namespace(tenant: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(tenant, None, **{"istio-injection": "enabled", "tenant-ns": "true"}),
    }


def service_account(tenant: str) -> Obj:
    # No token is mounted: the gcsfuse CSI driver and the mesh get their own tokens.
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(KSA_NAME, tenant),
        "automountServiceAccountToken": False,
    }


def network_policies(tenant: str) -> list[Obj]:
    """The six baseline policies of the reference architecture."""
    return [
        _netpol("default-deny-all", tenant, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _netpol(
            "allow-within-own-namespace",
            tenant,
            {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [_ns_selector(tenant)]}],
                "egress": [{"to": [_ns_selector(tenant)]}],
            },
        ),
        _netpol(
            "allow-egress-metadata-server",
            tenant,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": METADATA_SERVER}}],
                        "ports": [
                            {"protocol": "UDP", "port": 53},
                            {"protocol": "TCP", "port": 53},
                            {"protocol": "TCP", "port": 80},
                        ],
                    },
                    {
                        "to": [{"ipBlock": {"cidr": c}} for c in GKE_METADATA_AGENT],
                        "ports": [{"protocol": "TCP", "port": 988}],
                    },
                ],
            },
        ),
        _netpol(
            "allow-egress-istio-system",
            tenant,
            {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [_ns_selector("istio-system")]}]},
        ),
        _netpol(
            "allow-egress-kube-system-dns",
            tenant,
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_ns_selector("kube-system")],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        ),
        _netpol(
            "allow-egress-to-private-google-apis",
            tenant,
            {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": PRIVATE_GOOGLE_APIS}}]}]},
        ),
    ]


def same_namespace_authorization(tenant: str) -> Obj:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": _meta("allow-same-namespace", tenant),
        "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": [tenant]}}]}]},
    }


def storage_service_entry(tenant: str) -> Obj:
    """The workspace bucket's API host, reachable from the tenant when the mesh allows registry hosts only."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": _meta("storage-googleapis-com", tenant),
        "spec": {
            "exportTo": ["."],
            "hosts": ["storage.googleapis.com"],
            "location": "MESH_EXTERNAL",
            "ports": [{"name": "tls-https", "number": 443, "protocol": "TLS"}],
            "resolution": "DNS",
        },
    }


def node_pool_mutators(tenant: str) -> list[Obj]:
    """Policy Controller mutators pinning every pod of the tenant to its node pool <cluster>-<tenant>-p."""
    apply_to = [{"groups": [""], "kinds": ["Pod"], "versions": ["v1"]}]
    match = {"scope": "Namespaced", "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "namespaces": [tenant]}
    return [
        {
            "apiVersion": "mutations.gatekeeper.sh/v1",
            "kind": "Assign",
            "metadata": _meta(f"mutator-add-nodeaffinity-{tenant}"),
            "spec": {
                "applyTo": apply_to,
                "match": match,
                "location": "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
                "parameters": {"assign": {"value": [{"matchExpressions": [{"key": TENANT_NODE_LABEL, "operator": "In", "values": [tenant]}]}]}},
            },
        },
        {
            "apiVersion": "mutations.gatekeeper.sh/v1",
            "kind": "Assign",
            "metadata": _meta(f"mutator-add-toleration-{tenant}"),
            "spec": {
                "applyTo": apply_to,
                "match": match,
                "location": "spec.tolerations",
                "parameters": {"assign": {"value": [{"key": TENANT_NODE_LABEL, "operator": "Equal", "value": tenant, "effect": "NoExecute"}]}},
            },
        },
    ]


def tenant_objects(tenant: str, *, on_reference_architecture: bool) -> dict[str, list[Obj]]:
    """File name (in the tenant base) -> objects.

    On the reference architecture its own Config Sync already manages the namespace, the KSA, the baseline
    policies and the mutators of every tenant it creates (fedgen.refarch.tenant_objects): declaring them
    again would make two managers fight over them (KNV1060), so only what the platform lacks is rendered.
    """
    objects = {"service-entries.yaml": [storage_service_entry(tenant)]}
    if not on_reference_architecture:
        objects.update(
            {
                "namespace.yaml": [namespace(tenant)],
                "service-account.yaml": [service_account(tenant)],
                "network-policies.yaml": network_policies(tenant),
                "authorization-policy.yaml": [same_namespace_authorization(tenant)],
                "mutators.yaml": node_pool_mutators(tenant),
            }
        )
    return objects
