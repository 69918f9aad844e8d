"""Argo CD objects: an Application per sync root, an app-of-apps root, and an AppProject that limits the
federation to the namespaces and kinds it renders."""

from __future__ import annotations

from typing import Any

from fedgen.render.layout import GATEWAY_NAMESPACE, MANAGED_BY, cluster_dir
from fedgen.spec.model import Federation

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


def project_name(fed: Federation) -> str:
    return f"fedgen-{fed.server.cluster}"


def _sync_policy() -> Obj:
    return {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["ServerSideApply=true"]}


def _meta(name: str) -> Obj:
    return {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": dict(MANAGED_BY)}


def sync_root_application(fed: Federation) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _meta(project_name(fed)),
        "spec": {
            "project": project_name(fed),
            "source": {"repoURL": fed.gitops.repo, "targetRevision": fed.gitops.revision, "path": cluster_dir(fed.server.cluster)},
            "destination": {"server": IN_CLUSTER},
            "syncPolicy": _sync_policy(),
        },
    }


def app_project(fed: Federation) -> Obj:
    namespaces = sorted({fed.server.tenant} | ({GATEWAY_NAMESPACE} if fed.server.exposure == "gateway" else set()))
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": _meta(project_name(fed)),
        "spec": {
            "description": f"fedgen: federation {fed.name} on cluster {fed.server.cluster}",
            "sourceRepos": [fed.gitops.repo],
            "destinations": [{"server": IN_CLUSTER, "namespace": ns} for ns in namespaces],
            "clusterResourceWhitelist": [{"group": g, "kind": k} for g, k in CLUSTER_KINDS],
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in NAMESPACED_KINDS],
        },
    }


def root_application(fed: Federation, apps_dir: str) -> Obj:
    """App of apps: applied once by the operator; it keeps the Application and AppProject in sync."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": _meta(f"{project_name(fed)}-root"),
        "spec": {
            "project": "default",
            "source": {"repoURL": fed.gitops.repo, "targetRevision": fed.gitops.revision, "path": apps_dir},
            "destination": {"server": IN_CLUSTER, "namespace": ARGOCD_NAMESPACE},
            "syncPolicy": _sync_policy(),
        },
    }
