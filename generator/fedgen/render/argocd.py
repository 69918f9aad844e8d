"""Argo CD objects: an Application per sync root, an app-of-apps root, and an AppProject that limits the
federation to the namespaces and kinds it renders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedgen.render.layout import MANAGED_BY, cluster_dir

Obj = dict[str, Any]
ARGOCD_NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
# Every kind a render puts in a sync root, by API group ("" = core).
NAMESPACED_KINDS = (
    ("", "ConfigMap"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("bitnami.com", "SealedSecret"),
    ("networking.istio.io", "DestinationRule"),
    ("networking.istio.io", "Gateway"),
    ("networking.istio.io", "ServiceEntry"),
    ("networking.istio.io", "VirtualService"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "PeerAuthentication"),
)
CLUSTER_KINDS = (("", "Namespace"), ("mutations.gatekeeper.sh", "Assign"))


def project_name(cluster: str) -> str:
    return f"fedgen-{cluster}"


def _sync_policy() -> Obj:
    return {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["ServerSideApply=true"]}


def _meta(name: str) -> Obj:
    return {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": dict(MANAGED_BY)}


def sync_root_application(gitops: Mapping[str, str], cluster: str) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _meta(project_name(cluster)),
        "spec": {
            "project": project_name(cluster),
            "source": {"repoURL": gitops["repo"], "targetRevision": gitops["revision"], "path": cluster_dir(cluster)},
            "destination": {"server": IN_CLUSTER},
            "syncPolicy": _sync_policy(),
        },
    }


def app_project(gitops: Mapping[str, str], cluster: str, namespaces: Sequence[str]) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": _meta(project_name(cluster)),
        "spec": {
            "description": f"fedgen: the federations synced to cluster {cluster}",
            "sourceRepos": [gitops["repo"]],
            "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in namespaces],
            "clusterResourceWhitelist": [{"group": g, "kind": k} for g, k in CLUSTER_KINDS],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in NAMESPACED_KINDS],
        },
    }


def root_application(gitops: Mapping[str, str], cluster: str, apps_dir: str) -> Obj:
    """App of apps: applied once by the operator; it keeps the Application and AppProject in sync."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _meta(f"{project_name(cluster)}-root"),
        "spec": {
            "project": "default",
            "source": {"repoURL": gitops["repo"], "targetRevision": gitops["revision"], "path": apps_dir},
            "destination": {"server": IN_CLUSTER, "namespace": ARGOCD_NAMESPACE},
            "syncPolicy": _sync_policy(),
        },
    }
