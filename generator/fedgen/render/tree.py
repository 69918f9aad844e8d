"""Assemble the files a federation owns: pure data in, {repo path: bytes} out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from fedgen.render import mesh, server, tenant
from fedgen.render.gitops import folder_files, kustomization
from fedgen.render.layout import ingress_dir, server_base_dir, tenant_base_dir, tenant_overlay_dir
from fedgen.render.serialize import dump_yaml
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


def render_tree(inp: RenderInput) -> dict[str, bytes]:
    """The files this federation owns alone; shared.py makes the files several federations feed."""
    fed, spec_name = inp.federation, inp.spec_name
    files: dict[str, bytes] = {}

    files.update(folder_files(tenant_base_dir(fed.server.tenant), tenant.tenant_objects(fed.server.tenant), spec_name))

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
    files.update(folder_files(server_base_dir(fed), server_objects, spec_name))

    overlay = tenant_overlay_dir(fed)
    files[f"{overlay}/kustomization.yaml"] = dump_yaml(
        kustomization(
            [_rel(overlay, tenant_base_dir(fed.server.tenant)), _rel(overlay, server_base_dir(fed))],
            labels=[{"pairs": {"fedgen.dev/cluster": fed.server.cluster, "fedgen.dev/federation": fed.name}}],
        ),
        spec_name=spec_name,
    )

    if not server.is_bypass(fed):
        files.update(folder_files(ingress_dir(fed), mesh.ingress_objects(fed), spec_name))
    return files
