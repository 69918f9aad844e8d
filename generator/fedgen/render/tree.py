"""Assemble every file a render writes: pure data in, {repo path: bytes} out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.render import mesh, server, tenant
from fedgen.render import argocd
from fedgen.render.gitops import kustomization, root_sync
from fedgen.render.layout import (
    bootstrap_dir,
    cluster_dir,
    ingress_dir,
    server_base_dir,
    tenant_base_dir,
    tenant_overlay_dir,
    tfvars_path,
)
from fedgen.render.serialize import dump_documents, dump_json, dump_yaml
from fedgen.render.tfvars import tfvars
from fedgen.spec.model import Federation

SEALED_SECRET_FILE = "sealed-secret.yaml"


@dataclass(frozen=True)
class RenderInput:
    federation: Federation
    spec_name: str  # the spec's path relative to the repo, named in every header
    server_kit: Mapping[str, bytes]  # kit-relative path -> bytes, private key included (only sealed output leaves)
    sealed_key: Mapping[str, str]  # encryptedData of the server key SealedSecret
    sealing_scope: str


def sealed_secret_path(fed: Federation) -> str:
    return f"{server_base_dir(fed)}/{SEALED_SECRET_FILE}"


def _rel(from_dir: str, to_dir: str) -> str:
    return posixpath.relpath(to_dir, from_dir)


def _folder(files: dict[str, bytes], folder: str, objects: Mapping[str, list[dict[str, Any]]], spec_name: str, **extra: Any) -> None:
    for name, objs in objects.items():
        files[f"{folder}/{name}"] = dump_documents(objs, spec_name=spec_name)
    files[f"{folder}/kustomization.yaml"] = dump_yaml(kustomization(list(objects), **extra), spec_name=spec_name)


def render_tree(inp: RenderInput) -> dict[str, bytes]:
    fed, spec_name = inp.federation, inp.spec_name
    files: dict[str, bytes] = {}

    _folder(files, tenant_base_dir(fed.server.tenant), tenant.tenant_objects(fed.server.tenant), spec_name)

    configmaps = server.kit_configmaps(fed, inp.server_kit)
    digest = server.kit_digest(configmaps, inp.sealed_key)
    server_objects = {
        "configmaps.yaml": configmaps,
        SEALED_SECRET_FILE: [server.sealed_key_manifest(fed, inp.sealed_key, inp.sealing_scope)],
        "service.yaml": [server.service(fed)],
        "deployment.yaml": [server.deployment(fed, digest=digest)],
        "destination-rule.yaml": [server.destination_rule(fed)],
    }
    if server.is_bypass(fed):
        server_objects["peer-authentication.yaml"] = [server.peer_authentication(fed)]
        server_objects["network-policy.yaml"] = [server.client_network_policy(fed)]
    else:
        server_objects["authorization-policies.yaml"] = server.gateway_only_authorization(fed)
        server_objects["network-policy.yaml"] = [server.gateway_only_network_policy(fed)]
    _folder(files, server_base_dir(fed), server_objects, spec_name)

    overlay = tenant_overlay_dir(fed)
    files[f"{overlay}/kustomization.yaml"] = dump_yaml(
        kustomization(
            [_rel(overlay, tenant_base_dir(fed.server.tenant)), _rel(overlay, server_base_dir(fed))],
            labels=[{"pairs": {"fedgen.dev/cluster": fed.server.cluster, "fedgen.dev/federation": fed.name}}],
        ),
        spec_name=spec_name,
    )

    cdir = cluster_dir(fed.server.cluster)
    resources = [_rel(cdir, overlay)]
    if not server.is_bypass(fed):
        _folder(files, ingress_dir(fed), mesh.ingress_objects(fed), spec_name)
        resources.append(_rel(cdir, ingress_dir(fed)))
    files[f"{cdir}/kustomization.yaml"] = dump_yaml(kustomization(resources), spec_name=spec_name)
    _bootstrap(files, fed, spec_name)

    files[tfvars_path(fed)] = dump_json(tfvars(fed))
    return files


def _bootstrap(files: dict[str, bytes], fed: Federation, spec_name: str) -> None:
    """What the operator applies once per cluster to point the GitOps engine at the sync root."""
    folder = bootstrap_dir(fed.server.cluster)
    if fed.gitops.engine == "config-sync":
        _folder(files, folder, {"root-sync.yaml": [root_sync(fed, fed.server.cluster)]}, spec_name)
        return
    apps = f"{folder}/apps"
    _folder(files, apps, {"application.yaml": [argocd.sync_root_application(fed)], "app-project.yaml": [argocd.app_project(fed)]}, spec_name)
    _folder(files, folder, {"root-application.yaml": [argocd.root_application(fed, apps)]}, spec_name)
