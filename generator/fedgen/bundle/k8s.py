"""Kustomize manifests for a site that runs its NVFlare client on its own Kubernetes cluster.

The kit's non-secret files travel as two ConfigMaps (startup/ without the key, local/); the private key is a
Secret the site creates itself from its own copy of the kit (`kubectl create secret generic`), so no key is
ever inside a manifest. The pod mirrors the server's hardening: uid/gid 10000, read-only root file system,
no service account token, all capabilities dropped, startup/ and local/ mounted read-only inside a writable
emptyDir kit root, and a NetworkPolicy refusing every inbound connection (a client only dials out).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.bundle.model import CLIENT_MODULE, CONTAINER_PYTHON, K8S_KIT_PARENT, BundleContext, k8s_slug
from fedgen.provision import KitFile
from fedgen.render.serialize import dump_documents, dump_yaml
from fedgen.render.hardening import PROCESS_ENV, container_security_context, pod_security_context

Obj = dict[str, Any]

KEY_FILE = "startup/client.key"
# What the client process reads from startup/ (start scripts and the readme stay out of the ConfigMap).
STARTUP_FILES = ("startup/client.crt", "startup/fed_client.json", "startup/rootCA.pem")
FOLDER = "k8s"


@dataclass(frozen=True)
class SiteNames:
    namespace: str
    workload: str
    startup_configmap: str
    local_configmap: str
    key_secret: str
    kit_root: str


def site_names(ctx: BundleContext) -> SiteNames:
    slug = k8s_slug(ctx.participant.name)
    workload = f"nvflare-{slug}"
    return SiteNames(
        namespace=workload,
        workload=workload,
        startup_configmap=f"{workload}-startup",
        local_configmap=f"{workload}-local",
        key_secret=f"{workload}-key",
        kit_root=f"{K8S_KIT_PARENT}/{ctx.participant.name}",
    )


def secret_command(ctx: BundleContext, key_path: str) -> str:
    """The command a site runs to create the key Secret from its own copy of the kit."""
    n = site_names(ctx)
    return shlex.join(["kubectl", "-n", n.namespace, "create", "secret", "generic", n.key_secret, f"--from-file=client.key={key_path}"])


def _labels(ctx: BundleContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "nvflare-client",
        "app.kubernetes.io/instance": k8s_slug(ctx.participant.name),
        "app.kubernetes.io/managed-by": "fedgen",
    }


def _selector(ctx: BundleContext) -> dict[str, str]:
    labels = _labels(ctx)
    return {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


def configmaps(ctx: BundleContext, kit: Mapping[str, KitFile]) -> list[Obj]:
    n = site_names(ctx)
    startup = {p.split("/", 1)[1]: kit[p].data.decode() for p in STARTUP_FILES}
    local = {p.split("/", 1)[1]: kit[p].data.decode() for p in sorted(kit) if p.startswith("local/")}
    meta = {"namespace": n.namespace, "labels": _labels(ctx)}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n.startup_configmap, **meta}, "data": startup},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n.local_configmap, **meta}, "data": local},
    ]


def deployment(ctx: BundleContext, digest: str) -> Obj:
    n = site_names(ctx)
    p = ctx.participant
    container = {
        "name": "nvflare",
        "image": ctx.federation.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [CONTAINER_PYTHON],
        "args": [
            "-u", "-m", CLIENT_MODULE, "-m", n.kit_root, "-s", "fed_client.json",
            "--set", "secure_train=true", f"uid={p.name}", "config_folder=config", f"org={p.org}",
        ],
        "env": list(PROCESS_ENV),
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
            "limits": {"memory": "2Gi", "ephemeral-storage": "4Gi"},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "kit", "mountPath": n.kit_root},
            {"name": "startup", "mountPath": f"{n.kit_root}/startup", "readOnly": True},
            {"name": "local", "mountPath": f"{n.kit_root}/local", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [
        {"name": "kit", "emptyDir": {"sizeLimit": "4Gi"}},
        {
            "name": "startup",
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {"configMap": {"name": n.startup_configmap}},
                    {"secret": {"name": n.key_secret, "items": [{"key": "client.key", "path": "client.key", "mode": 0o440}]}},
                ],
            },
        },
        {"name": "local", "configMap": {"name": n.local_configmap, "defaultMode": 0o444}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    pod: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    t = ctx.target
    if t.ip is not None and t.needs_mapping:
        # The client dials the server's name (the certificate CN is checked, not the address): map it here.
        pod["hostAliases"] = [{"ip": t.ip, "hostnames": [t.dialled]}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": n.workload, "namespace": n.namespace, "labels": _labels(ctx)},
        "spec": {
            "replicas": 1,
            # One identity, one process: never run an old and a new client side by side.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _selector(ctx)},
            "template": {
                "metadata": {"labels": _labels(ctx), "annotations": {"fedgen.dev/kit-digest": digest}},
                "spec": pod,
            },
        },
    }


def network_policy(ctx: BundleContext) -> Obj:
    n = site_names(ctx)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{n.workload}-deny-ingress", "namespace": n.namespace, "labels": _labels(ctx)},
        "spec": {"podSelector": {"matchLabels": _selector(ctx)}, "policyTypes": ["Ingress"]},
    }


def namespace(ctx: BundleContext) -> Obj:
    n = site_names(ctx)
    labels = {
        "app.kubernetes.io/managed-by": "fedgen",
        # The pod satisfies the restricted Pod Security Standard; enforce it.
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n.namespace, "labels": labels}}


def _digest(maps: list[Obj]) -> str:
    return hashlib.sha256(json.dumps([m["data"] for m in maps], sort_keys=True).encode()).hexdigest()[:16]


def _header(ctx: BundleContext) -> bytes:
    return (
        f"# Generated by fedgen client-bundle from {ctx.spec_name} for site {ctx.participant.name}. "
        "Apply with `kubectl apply -k` after creating the key Secret (see ../README.md).\n"
    ).encode()


def _rehead(data: bytes, ctx: BundleContext) -> bytes:
    """fedgen's serializer output with the bundle's own header instead of the render's."""
    return _header(ctx) + data.split(b"\n", 1)[1]


def site_manifests(ctx: BundleContext, kit: Mapping[str, KitFile]) -> dict[str, bytes]:
    """k8s/<file> -> bytes for the site's Kustomize folder."""
    maps = configmaps(ctx, kit)
    objects = {
        "namespace.yaml": [namespace(ctx)],
        "configmaps.yaml": maps,
        "deployment.yaml": [deployment(ctx, _digest(maps))],
        "networkpolicy.yaml": [network_policy(ctx)],
    }
    files = {f"{FOLDER}/{name}": _rehead(dump_documents(objs, spec_name=ctx.spec_name), ctx) for name, objs in objects.items()}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(objects),
    }
    files[f"{FOLDER}/kustomization.yaml"] = _rehead(dump_yaml(kustomization, spec_name=ctx.spec_name), ctx)
    return files
