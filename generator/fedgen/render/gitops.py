"""Config Sync objects and the kustomizations that tie bases, overlays and sync roots together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedgen.render.layout import CONFIG_SYNC_NAMESPACE, MANAGED_BY, ROOT_SYNC_NAME, cluster_dir
from fedgen.render.serialize import Document, dump_file

Obj = dict[str, Any]


def kustomization(resources: list[str], **extra: Any) -> Obj:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": sorted(resources), **extra}


def folder_documents(folder: str, objects: Mapping[str, list[Obj]], **extra: Any) -> dict[str, Document]:
    """One YAML file per entry plus the kustomization.yaml listing them."""
    out: dict[str, Document] = {f"{folder}/{name}": list(objs) for name, objs in objects.items()}
    out[f"{folder}/kustomization.yaml"] = kustomization(list(objects), **extra)
    return out


def folder_files(folder: str, objects: Mapping[str, list[Obj]], spec_name: str, **extra: Any) -> dict[str, bytes]:
    return {path: dump_file(doc, spec_name=spec_name) for path, doc in folder_documents(folder, objects, **extra).items()}


def root_sync(gitops: Mapping[str, str], cluster: str) -> Obj:
    """Points Config Sync at clusters/<cluster>. Applied once by the operator (a RootSync may not manage
    itself), so it sits in bootstrap/, outside what the sync root's kustomization builds."""
    git: Obj = {"repo": gitops["repo"], "revision": gitops["revision"], "dir": cluster_dir(cluster), "auth": gitops["auth"]}
    if "secret_ref" in gitops:
        git["secretRef"] = {"name": gitops["secret_ref"]}
    if "gcp_service_account_email" in gitops:
        git["gcpServiceAccountEmail"] = gitops["gcp_service_account_email"]
    return {
        "apiVersion": "configsync.gke.io/v1beta1",
        "kind": "RootSync",
        "metadata": {"name": ROOT_SYNC_NAME, "namespace": CONFIG_SYNC_NAMESPACE, "labels": dict(MANAGED_BY)},
        "spec": {"sourceFormat": "unstructured", "sourceType": "git", "git": git},
    }
