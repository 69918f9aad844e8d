"""Assemble the files a federation owns: pure data in, {repo path: bytes} out."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedgen.render import mesh, pod, server, site, tenant
from fedgen.render.gitops import folder_documents, kustomization
from fedgen.render.layout import MANAGED_BY, ingress_dir, server_base_dir, server_key_secret_name, tenant_base_dir, tenant_overlay_dir
from fedgen.render.serialize import Document, dump_file
from fedgen.seal.manifest import sealed_secret_manifest
from fedgen.seal.policy import SecretToSeal
from fedgen.spec.model import Federation

SEALED_SECRET_FILE = "sealed-secret.yaml"


@dataclass(frozen=True)
class RenderInput:
    federation: Federation
    spec_name: str  # the spec's path relative to the repo, named in every header
    # participant -> kit-relative path -> bytes, for the server and site-cluster sites; private keys
    # included (only their sealed form leaves).
    kits: Mapping[str, Mapping[str, bytes]]
    sealed: Mapping[tuple[str, str], Mapping[str, str]]  # (namespace, name) -> encryptedData


def sealed_secret_path(fed: Federation) -> str:
    return f"{server_base_dir(fed)}/{SEALED_SECRET_FILE}"


@dataclass(frozen=True)
class SealedKey:
    """A private key of a kit that the tree holds only sealed: RenderInput.sealed[(namespace, name)][key]."""

    namespace: str
    name: str  # the SealedSecret's (and the Secret's) name
    key: str  # its data key
    participant: str
    kit_path: str  # the key's file in the participant's kit
    cluster: str  # whose controller unseals it
    certificate: Path | None  # that controller's certificate, from the spec (None: a development key)
    repo_path: str


def sealed_keys(fed: Federation) -> tuple[SealedKey, ...]:
    """The server key for the server cluster, and each site cluster's client key for that cluster."""
    out = [
        SealedKey(
            fed.server.tenant,
            server_key_secret_name(fed),
            "server.key",
            fed.server.name,
            server.SERVER_KEY,
            fed.server.cluster,
            fed.sealing.certificate,
            sealed_secret_path(fed),
        )
    ]
    for s in fed.cluster_sites:
        assert s.cluster is not None
        out.append(
            SealedKey(
                s.namespace,
                site.client_key_secret_name(s),
                "client.key",
                s.name,
                site.CLIENT_KEY,
                s.cluster,
                fed.cluster(s.cluster).sealing_certificate,
                f"{site.site_dir(s)}/{SEALED_SECRET_FILE}",
            )
        )
    return tuple(out)


def secrets_to_seal(fed: Federation, kits: Mapping[str, Mapping[str, bytes]]) -> list[SecretToSeal]:
    """What the sealing policy seals for this render: each sealed key with its plaintext from the kits."""
    return [
        SecretToSeal(
            namespace=k.namespace,
            name=k.name,
            data={k.key: kits[k.participant][k.kit_path]},
            certificate=k.certificate,
            cluster=k.cluster,
            scope=fed.sealing.scope,
            repo_path=k.repo_path,
        )
        for k in sealed_keys(fed)
    ]


def _rel(from_dir: str, to_dir: str) -> str:
    return posixpath.relpath(to_dir, from_dir)


def owned_folders(fed: Federation) -> list[str]:
    """Every folder render_tree writes into, known from the spec alone (checked before the state is locked)."""
    folders = [tenant_base_dir(fed.server.tenant), server_base_dir(fed), tenant_overlay_dir(fed)]
    if not server.is_bypass(fed):
        folders.append(ingress_dir(fed))
    return folders + [site.site_dir(s) for s in fed.cluster_sites]


def render_tree(inp: RenderInput) -> dict[str, bytes]:
    """The files this federation owns alone; shared.py makes the files several federations feed."""
    return {path: dump_file(doc, spec_name=inp.spec_name) for path, doc in render_documents(inp).items()}


def render_documents(inp: RenderInput) -> dict[str, Document]:
    """What render_tree serializes: the objects of each file (validate reads them without serializing)."""
    fed = inp.federation
    files: dict[str, Document] = {}

    baseline = tenant.tenant_objects(fed.server.tenant, on_reference_architecture=fed.server_cluster.on_reference_architecture)
    files.update(folder_documents(tenant_base_dir(fed.server.tenant), baseline))

    sealed_key = inp.sealed[(fed.server.tenant, server_key_secret_name(fed))]
    configmaps = server.kit_configmaps(fed, inp.kits[fed.server.name])
    digest = pod.kit_digest(configmaps, sealed_key)
    server_objects = {
        "configmaps.yaml": configmaps,
        SEALED_SECRET_FILE: [server.sealed_key_manifest(fed, sealed_key, fed.sealing.scope)],
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
    files.update(folder_documents(server_base_dir(fed), server_objects))

    overlay = tenant_overlay_dir(fed)
    files[f"{overlay}/kustomization.yaml"] = kustomization(
        [_rel(overlay, tenant_base_dir(fed.server.tenant)), _rel(overlay, server_base_dir(fed))],
        labels=[{"pairs": {"fedgen.dev/cluster": fed.server.cluster, "fedgen.dev/federation": fed.name}}],
    )

    if not server.is_bypass(fed):
        files.update(folder_documents(ingress_dir(fed), mesh.ingress_objects(fed)))
    for s in fed.cluster_sites:
        encrypted = inp.sealed[(s.namespace, site.client_key_secret_name(s))]
        sealed = sealed_secret_manifest(
            name=site.client_key_secret_name(s), namespace=s.namespace, scope=fed.sealing.scope, encrypted_data=encrypted, labels=dict(MANAGED_BY)
        )
        files.update(folder_documents(site.site_dir(s), site.site_objects(fed, s, inp.kits[s.name], sealed)))
    return files
