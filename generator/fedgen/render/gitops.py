"""Config Sync objects and the kustomizations that tie bases, overlays and sync roots together."""

from __future__ import annotations

from typing import Any

from fedgen.render.layout import CONFIG_SYNC_NAMESPACE, MANAGED_BY, ROOT_SYNC_NAME, cluster_dir
from fedgen.spec.model import Federation

Obj = dict[str, Any]


def kustomization(resources: list[str], **extra: Any) -> Obj:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": sorted(resources), **extra}


def root_sync(fed: Federation, cluster: str) -> Obj:
    """Points Config Sync at clusters/<cluster>. Applied once by the operator (a RootSync may not manage
    itself), so it sits in bootstrap/, outside what the sync root's kustomization builds."""
    git: Obj = {
        "repo": fed.gitops.repo,
        "revision": fed.gitops.revision,
        "dir": cluster_dir(cluster),
        "auth": fed.gitops.auth,
    }
    if fed.gitops.secret_ref:
        git["secretRef"] = {"name": fed.gitops.secret_ref}
    if fed.gitops.gcp_service_account_email:
        git["gcpServiceAccountEmail"] = fed.gitops.gcp_service_account_email
    return {
        "apiVersion": "configsync.gke.io/v1beta1",
        "kind": "RootSync",
        "metadata": {"name": ROOT_SYNC_NAME, "namespace": CONFIG_SYNC_NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {"sourceFormat": "unstructured", "sourceType": "git", "git": git},
    }
