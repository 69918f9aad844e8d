"""Terraform variables of the reference architecture, fed from the spec (kept outside every sync root).

Only clusters on the reference architecture get them, split the way its shared configuration splits them
(fedgen.refarch.VARIABLE_GROUPS), one values file per group, so each of its root modules receives exactly
the groups it declares. Nothing here touches the platform's own Config Sync (configmanagement_*) or the
example workload module fedgen replaces.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fedgen import refarch
from fedgen.render.layout import KSA_NAME
from fedgen.spec.model import Cluster, Federation

Variables = dict[str, dict[str, Any]]  # group -> variable -> value

# How several federations' variables combine (render/shared.py): lists are unioned, maps merged, and every
# other variable must agree.
LIST_VARIABLES = frozenset(
    {
        "federated_learning_cloud_storage_buckets_iam_bindings",
        "federated_learning_external_services_allowed_namespaces",
        "federated_learning_tenant_names",
    }
)
MAP_VARIABLES = frozenset({"federated_learning_cloud_storage_buckets"})
OBJECT_USER_ROLE = "roles/storage.objectUser"


def _grouped(variables: dict[str, Any]) -> Variables:
    out: Variables = defaultdict(dict)
    for name, value in sorted(variables.items()):
        out[refarch.group_of(name)][name] = value
    return dict(out)


def _platform_and_cluster(fed: Federation, cluster: Cluster) -> dict[str, Any]:
    return {
        "cluster_project_id": cluster.project_id,
        "cluster_region": cluster.region,
        "platform_default_project_id": cluster.project_id,
        "platform_default_region": cluster.region,
        "platform_name": fed.platform.platform_name,
        "resource_name_prefix": fed.platform.resource_name_prefix,
    }


def workspace_member(fed: Federation) -> str | None:
    """The server KSA's Workload Identity principal (None without the project number)."""
    cluster = fed.server_cluster
    if cluster.project_number is None:
        return None
    return refarch.workload_identity_principal(cluster.project_number, cluster.project_id, fed.server.tenant, KSA_NAME)


def server_cluster_tfvars(fed: Federation) -> Variables:
    """The server cluster's variables: its tenant (namespace, node pool), the workspace bucket (keyed like
    cloud_storage keys it) with the server KSA's binding, and the bypass exemption. Empty when standalone."""
    cluster = fed.server_cluster
    if not cluster.on_reference_architecture:
        return {}
    tenant = fed.server.tenant
    buckets: dict[str, Any] = {}
    bindings: list[dict[str, str]] = []
    member = workspace_member(fed)
    if fed.workspace.platform_bucket:  # a bucket named outright is not the platform's: granted by hand (README)
        buckets[fed.workspace.bucket] = {"force_destroy": False, "versioning_enabled": True}
        if member is not None:
            bindings.append({"bucket_name": fed.workspace.bucket, "member": member, "role": OBJECT_USER_ROLE})
    return _grouped(
        {
            **_platform_and_cluster(fed, cluster),
            "federated_learning_cloud_storage_buckets": buckets,
            "federated_learning_cloud_storage_buckets_iam_bindings": bindings,
            "federated_learning_external_services_allowed_namespaces": [tenant] if fed.server.exposure == "loadbalancer" else [],
            "federated_learning_node_pool_machine_type": fed.node_pool_machine_type,
            "federated_learning_tenant_names": [tenant],
        }
    )


def site_cluster_tfvars(fed: Federation, cluster_name: str) -> Variables:
    """A site cluster on its own reference architecture: its project, region and the sites' namespaces as
    tenants (each gets the platform's namespace baseline and node pool). Empty when standalone."""
    cluster = fed.cluster(cluster_name)
    if not cluster.on_reference_architecture:
        return {}
    return _grouped(
        {
            **_platform_and_cluster(fed, cluster),
            "federated_learning_node_pool_machine_type": fed.node_pool_machine_type,
            "federated_learning_tenant_names": sorted(s.namespace for s in fed.cluster_sites if s.cluster == cluster_name),
        }
    )
