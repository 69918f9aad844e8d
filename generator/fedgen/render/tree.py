"""Assemble every file a render writes: pure data in, {repo path: bytes} out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.render import mesh, server, tenant
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
        "authorization-policies.yaml": server.gateway_only_authorization(fed),
        "network-policy.yaml": [server.gateway_only_network_policy(fed)],
    }
    _folder(files, server_base_dir(fed), server_objects, spec_name)

    overlay = tenant_overlay_dir(fed)
    files[f"{overlay}/kustomization.yaml"] = dump_yaml(
        kustomization(
            [_rel(overlay, tenant_base_dir(fed.server.tenant)), _rel(overlay, server_base_dir(fed))],
            labels=[{"pairs": {"fedgen.dev/cluster": fed.server.cluster, "fedgen.dev/federation": fed.name}}],
        ),
        spec_name=spec_name,
    )

    _folder(files, ingress_dir(fed), mesh.ingress_objects(fed), spec_name)

    cdir = cluster_dir(fed.server.cluster)
    resources = [ingress_dir(fed)[len(cdir) + 1 :], _rel(cdir, overlay)]
    files[f"{cdir}/kustomization.yaml"] = dump_yaml(kustomization(resources), spec_name=spec_name)
    _folder(files, bootstrap_dir(fed.server.cluster), {"root-sync.yaml": [root_sync(fed, fed.server.cluster)]}, spec_name)

    files[tfvars_path(fed)] = dump_json(tfvars(fed))
    return files
