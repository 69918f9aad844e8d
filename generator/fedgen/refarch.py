"""Facts about the Google Cloud federated-learning reference architecture (accelerated-platforms,
platforms/gke/base/use-cases/federated-learning), in one place: what its own Config Sync already manages
on a cluster, which ports its firewall opens, which regions its Terraform accepts, and how its Terraform
variables are grouped. Render decides what to leave out with these; validate checks against them.

Restated in our own words from the upstream sources; no upstream code lives here.
"""

from __future__ import annotations

from collections.abc import Iterable

REFERENCE_ARCHITECTURE = "reference-architecture"  # the platform owns tenant baselines, gateway and mesh
STANDALONE = "standalone"  # a plain GKE cluster: fedgen renders the tenant baseline itself
PLATFORM_KINDS = (REFERENCE_ARCHITECTURE, STANDALONE)

# The Kubernetes service account config_management creates in every tenant namespace; the workspace
# bucket's IAM binding names its Workload Identity principal.
TENANT_KSA = "fl-ksa"
GATEWAY_NAMESPACE = "istio-ingress"

# Its firewall opens TCP 8002/8003 only (ingress to the gateway nodes; site clusters' node-pool egress).
FIREWALL_PORTS = (8002, 8003)
# The values its cluster_region variable's validation accepts.
CLUSTER_REGIONS = ("us-central1", "us-east4", "us-east5")

ObjectId = tuple[str, str, str, str]  # (API group, kind, namespace, name); namespace "" when cluster-scoped

_TENANT_NETWORK_POLICIES = (
    "default-deny-all",
    "allow-within-own-namespace",
    "allow-egress-metadata-server",
    "allow-egress-istio-system",
    "allow-egress-istio-egress",  # only in some upstream versions; never a name fedgen renders
    "allow-egress-kube-system-dns",
    "allow-egress-to-private-google-apis",
)
_GATEWAY_NETWORK_POLICIES = tuple(n for n in _TENANT_NETWORK_POLICIES if n != "allow-egress-istio-egress")

# The ingress gateway, the mesh configuration and the egress gateway its root-sync delivers to every cluster.
_CLUSTER_OBJECTS: frozenset[ObjectId] = frozenset(
    {
        ("", "Namespace", "", GATEWAY_NAMESPACE),
        ("apps", "Deployment", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        ("autoscaling", "HorizontalPodAutoscaler", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        ("policy", "PodDisruptionBudget", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        ("rbac.authorization.k8s.io", "Role", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        ("rbac.authorization.k8s.io", "RoleBinding", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        ("", "ServiceAccount", GATEWAY_NAMESPACE, "istio-ingressgateway"),
        *(("networking.k8s.io", "NetworkPolicy", GATEWAY_NAMESPACE, n) for n in _GATEWAY_NETWORK_POLICIES),
        ("", "ConfigMap", "istio-system", "istio-asm-managed"),
        ("", "ConfigMap", "istio-system", "istio-asm-managed-rapid"),
        ("security.istio.io", "PeerAuthentication", "istio-system", "default"),
        ("security.istio.io", "AuthorizationPolicy", "istio-system", "allow-nothing"),
        ("networking.istio.io", "ServiceEntry", "istio-system", "metadata-google-internal"),
        ("networking.istio.io", "ServiceEntry", "istio-system", "private-googleapis-com"),
        ("networking.istio.io", "DestinationRule", "istio-system", "target-egress-gateway"),
        ("", "Namespace", "", "istio-egress"),
        ("apps", "Deployment", "istio-egress", "istio-egressgateway"),
        ("", "Service", "istio-egress", "istio-egressgateway"),
        ("networking.istio.io", "Gateway", "istio-egress", "egress-gateway"),
    }
)


def tenant_objects(tenant: str) -> frozenset[ObjectId]:
    """What config_management renders for each name in federated_learning_tenant_names."""
    return frozenset(
        {
            ("", "Namespace", "", tenant),
            ("", "ServiceAccount", tenant, TENANT_KSA),
            ("security.istio.io", "AuthorizationPolicy", tenant, "allow-within-namespace"),
            *(("networking.k8s.io", "NetworkPolicy", tenant, n) for n in _TENANT_NETWORK_POLICIES),
            ("mutations.gatekeeper.sh", "Assign", "", f"mutator-add-nodeaffinity-{tenant}"),
            ("mutations.gatekeeper.sh", "Assign", "", f"mutator-add-toleration-{tenant}"),
        }
    )


def managed_objects(tenants: Iterable[str]) -> dict[ObjectId, str]:
    """Every object the platform's own Config Sync manages on a cluster with these tenants -> whose it is
    (the tenant's name, or 'the platform' for the cluster-wide gateway and mesh objects)."""
    out: dict[ObjectId, str] = {oid: "the platform" for oid in _CLUSTER_OBJECTS}
    for tenant in sorted(set(tenants)):
        out.update({oid: f"tenant {tenant}" for oid in tenant_objects(tenant)})
    return out


# How upstream groups the Terraform variables fedgen feeds: one shared declaration file per group, linked
# into the root modules that use it, with a matching values file. fedgen writes one values file per group.
VARIABLE_GROUPS: dict[str, tuple[str, ...]] = {
    "platform": ("platform_default_project_id", "platform_default_region", "platform_name", "resource_name_prefix"),
    "cluster": ("cluster_project_id", "cluster_region"),
    "uc_federated_learning": (
        "federated_learning_cloud_storage_buckets",
        "federated_learning_cloud_storage_buckets_iam_bindings",
        "federated_learning_external_services_allowed_namespaces",
        "federated_learning_node_pool_machine_type",
        "federated_learning_tenant_names",
    ),
}


def group_of(variable: str) -> str:
    return next(group for group, names in VARIABLE_GROUPS.items() if variable in names)


def workload_identity_principal(project_number: str, project_id: str, namespace: str, service_account: str = TENANT_KSA) -> str:
    """The IAM principal of a Kubernetes service account under GKE Workload Identity Federation."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
        f"{project_id}.svc.id.goog/subject/ns/{namespace}/sa/{service_account}"
    )


def firewall_policy_name(resource_name_prefix: str, platform_name: str) -> str:
    """Its cluster is named <prefix>-<platform>; the federated-learning firewall policy after it."""
    return f"{resource_name_prefix}-{platform_name}-federated-learning-firewall-policy"
