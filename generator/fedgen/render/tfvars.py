"""Terraform variables of the reference architecture, fed from the spec (kept outside every sync root)."""

from __future__ import annotations

from typing import Any

from fedgen.render.layout import KSA_NAME
from fedgen.spec.model import Federation


# How several federations' variables combine (render/shared.py): lists are unioned, maps merged, the
# reference's single-workload example variables kept only when the repo holds one federation, and every
# other variable must agree.
LIST_VARIABLES = frozenset(
    {
        "federated_learning_cloud_storage_buckets_iam_bindings",
        "federated_learning_external_services_allowed_namespaces",
        "federated_learning_tenant_names",
    }
)
MAP_VARIABLES = frozenset({"federated_learning_cloud_storage_buckets"})
EXAMPLE_VARIABLES = frozenset(
    {
        "federated_learning_nvidia_flare_tff_example_bucket_name",
        "federated_learning_nvidia_flare_tff_example_container_image_tag",
        "federated_learning_nvidia_flare_tff_example_localized_container_image_id",
        "federated_learning_nvidia_flare_tff_example_tenant_name",
        "federated_learning_nvidia_flare_tff_example_workload_to_deploy",
    }
)


def _image_parts(image: str) -> tuple[str, str]:
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, digest or "latest"


def tfvars(fed: Federation) -> dict[str, Any]:
    cluster = fed.server_cluster
    tenant = fed.server.tenant
    image_id, image_tag = _image_parts(fed.image)
    bindings = []
    if cluster.project_number:
        member = (
            f"principal://iam.googleapis.com/projects/{cluster.project_number}/locations/global/workloadIdentityPools/"
            f"{cluster.project_id}.svc.id.goog/subject/ns/{tenant}/sa/{KSA_NAME}"
        )
        bindings.append({"bucket_name": fed.workspace.bucket_name, "member": member, "role": "roles/storage.objectUser"})
    return {
        "configmanagement_sync_branch": fed.gitops.revision,
        "configmanagement_sync_repo": fed.gitops.repo,
        "federated_learning_cloud_storage_buckets": {fed.workspace.bucket: {"force_destroy": False, "versioning_enabled": True}},
        "federated_learning_cloud_storage_buckets_iam_bindings": bindings,
        "federated_learning_external_services_allowed_namespaces": [tenant] if fed.server.exposure == "loadbalancer" else [],
        "federated_learning_node_pool_machine_type": fed.node_pool_machine_type,
        "federated_learning_nvidia_flare_tff_example_bucket_name": fed.workspace.bucket_name,
        "federated_learning_nvidia_flare_tff_example_container_image_tag": image_tag,
        "federated_learning_nvidia_flare_tff_example_localized_container_image_id": image_id,
        "federated_learning_nvidia_flare_tff_example_tenant_name": tenant,
        "federated_learning_nvidia_flare_tff_example_workload_to_deploy": fed.server.name,
        "federated_learning_tenant_names": [tenant],
        "platform_default_project_id": cluster.project_id,
        "platform_default_region": cluster.region,
        "platform_name": fed.platform.platform_name,
        "resource_name_prefix": fed.platform.resource_name_prefix,
    }


def site_cluster_tfvars(fed: Federation, cluster_name: str) -> dict[str, Any]:
    """A site cluster's own platform: its project, region and the sites' namespaces as tenants."""
    cluster = fed.cluster(cluster_name)
    return {
        "configmanagement_sync_branch": fed.gitops.revision,
        "configmanagement_sync_repo": fed.gitops.repo,
        "federated_learning_tenant_names": sorted(s.namespace for s in fed.cluster_sites if s.cluster == cluster_name),
        "platform_default_project_id": cluster.project_id,
        "platform_default_region": cluster.region,
        "platform_name": fed.platform.platform_name,
        "resource_name_prefix": fed.platform.resource_name_prefix,
    }
