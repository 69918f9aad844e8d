"""Where each rendered file lives in the repository, and the names of the objects in it."""

from __future__ import annotations

from fedgen import refarch
from fedgen.spec.model import Federation

GATEWAY_NAMESPACE = refarch.GATEWAY_NAMESPACE
# Labels of the reference architecture's ingress gateway pods.
GATEWAY_POD_LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
TENANT_NODE_LABEL = "federated-learning-tenant"
KSA_NAME = refarch.TENANT_KSA
CONFIG_SYNC_NAMESPACE = "config-management-system"
ROOT_SYNC_NAME = "fedgen"
MANAGED_BY = {"app.kubernetes.io/managed-by": "fedgen"}


def cluster_dir(cluster: str) -> str:
    return f"clusters/{cluster}"


def tenant_dir(tenant: str) -> str:
    return f"tenants/{tenant}"


def tenant_base_dir(tenant: str) -> str:
    return f"tenants/{tenant}/base"


def server_base_dir(fed: Federation) -> str:
    return f"tenants/{fed.server.tenant}/{fed.server.workload_name}"


def tenant_overlay_dir(fed: Federation) -> str:
    return f"tenants/{fed.server.tenant}/overlays/{fed.server.cluster}"


def ingress_dir(fed: Federation) -> str:
    return f"clusters/{fed.server.cluster}/{GATEWAY_NAMESPACE}/{fed.server.tenant}"


def bootstrap_dir(cluster: str) -> str:
    return f"clusters/{cluster}/bootstrap"


def server_fqdn(fed: Federation) -> str:
    return f"{fed.server.name}.{fed.server.tenant}.svc.cluster.local"


def server_key_secret_name(fed: Federation) -> str:
    return f"{fed.server.workload_name}-key"


def startup_configmap_name(fed: Federation) -> str:
    return f"{fed.server.workload_name}-startup"


def local_configmap_name(fed: Federation) -> str:
    return f"{fed.server.workload_name}-local"


def gateway_object_name(fed: Federation) -> str:
    return f"nvflare-{fed.server.tenant}"


def job_store_root(fed: Federation) -> str:
    """Jobs and snapshots on the bucket-backed workspace, so they survive a pod restart."""
    from fedgen.spec.model import WORKSPACE_MOUNT

    return f"{WORKSPACE_MOUNT}/{fed.name}/{fed.server.name}"
