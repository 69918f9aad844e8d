"""The NVFlare pod, built in one place for every workload fedgen writes: the server Deployment
(render/server.py), a site cluster's client Deployment (render/site.py) and the Deployment of a site
bundle's k8s/ folder (bundle/k8s.py).

The command, the hardening, the volumes (a writable kit root with startup/ and local/ mounted read-only
inside it, /tmp, the workspace bucket), the resources and the kit-digest annotation exist once, here; what
differs between the three workloads is a field of NvflarePod.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fedgen.render.hardening import PROCESS_ENV, container_security_context, pod_security_context
from fedgen.spec.model import RUN_AS_ID, WORKSPACE_MOUNT

Obj = dict[str, Any]

PYTHON = "/usr/local/bin/python3"
SERVER_MODULE = "nvflare.private.fed.app.server.server_train"
CLIENT_MODULE = "nvflare.private.fed.app.client.client_train"
CONTAINER_NAME = "nvflare"
KIT_DIGEST = "fedgen.dev/kit-digest"
# Kit files no NVFlare process reads; they stay out of the ConfigMaps.
UNUSED_KIT_FILES = frozenset({"readme.txt", "startup/start.sh", "startup/sub_start.sh", "startup/stop_fl.sh"})
TMP_GI = 1
# A client's job folders (the app, its models) live in the kit root, so its emptyDir is larger than the
# server's, whose job store lies on the workspace bucket.
SERVER_KIT_GI = 1
CLIENT_KIT_GI = 4
# What a client needs is the site's own training workload; memory request = limit keeps it from being
# evicted under node pressure before it reaches its limit.
CLIENT_REQUESTS = {"cpu": "1", "memory": "2Gi"}
CLIENT_LIMITS = {"cpu": "2", "memory": "2Gi"}


@dataclass(frozen=True)
class Role:
    module: str  # what python runs with -m
    config: str  # the startup file NVFlare reads (-s)
    key: str  # the private key's file name in startup/ (and its data key in the Secret)


SERVER = Role(SERVER_MODULE, "fed_server.json", "server.key")
CLIENT = Role(CLIENT_MODULE, "fed_client.json", "client.key")


def kit_root(participant: str) -> str:
    """The writable kit folder given to NVFlare with -m (an emptyDir; NVFlare writes logs and job folders
    there); startup/ and local/ mount inside it."""
    return f"/var/nvflare/{participant}"


def kit_files(kit: Mapping[str, bytes], role: Role) -> tuple[dict[str, str], dict[str, str]]:
    """The kit's startup/ (the private key and unused scripts left out) and local/ files, name -> text."""
    key = f"startup/{role.key}"
    startup = {p.split("/", 1)[1]: kit[p].decode() for p in sorted(kit) if p.startswith("startup/") and p != key and p not in UNUSED_KIT_FILES}
    local = {p.split("/", 1)[1]: kit[p].decode() for p in sorted(kit) if p.startswith("local/")}
    return startup, local


def kit_digest(configmaps: Sequence[Obj], key: Mapping[str, str]) -> str:
    """What the pod mounts, in 16 hex digits: the kit ConfigMaps' data and the key Secret's data as the
    manifests hold it (sealed ciphertext in the repository, the key itself in a bundle). Kubernetes rolls a
    Deployment only when its pod template changes; mounted ConfigMaps and Secrets do not count."""
    h = hashlib.sha256()
    h.update(json.dumps([c["data"] for c in configmaps], sort_keys=True).encode())
    h.update(json.dumps(dict(key), sort_keys=True).encode())
    return h.hexdigest()[:16]


def server_mesh_annotations(*, ports: Sequence[int], bypass: bool) -> dict[str, str]:
    """The server runs in the mesh; with exposure loadbalancer the sidecar stays (bucket and mesh traffic)
    but never intercepts NVFlare's own mutual TLS on its ports."""
    annotations = {"proxy.istio.io/config": '{ "holdApplicationUntilProxyStarts": true }'}
    if bypass:
        annotations["traffic.sidecar.istio.io/excludeInboundPorts"] = ",".join(str(p) for p in ports)
    return annotations


def client_mesh_annotations(*, fl_port: int) -> dict[str, str]:
    """A client in a mesh that lets pods reach registered hosts only (the reference architecture's
    REGISTRY_ONLY): NVFlare's own mutual TLS to the server goes around the sidecar."""
    return {"traffic.sidecar.istio.io/excludeOutboundPorts": str(fl_port)}


@dataclass(frozen=True)
class NvflarePod:
    """One NVFlare participant's Deployment; every field is a way the three workloads differ."""

    role: Role
    participant: str
    org: str
    image: str
    name: str  # the Deployment's
    namespace: str
    labels: Mapping[str, str]  # on the Deployment and its pod template
    selector: Mapping[str, str]
    startup_configmap: str
    local_configmap: str
    key_secret: str
    kit_digest: str
    requests: Mapping[str, str]  # cpu and memory
    limits: Mapping[str, str]
    kit_gi: int  # the kit root emptyDir's size
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports; the first is probed
    workspace_bucket: str | None = None  # mounted at WORKSPACE_MOUNT with gcsfuse
    service_account: str | None = None  # None: the namespace's default (its token is never mounted)
    mesh_annotations: Mapping[str, str] = field(default_factory=dict)
    host_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ip -> names
    node_label: tuple[str, str] | None = None  # (label, value): runs only on, and tolerates, those nodes


def deployment(pod: NvflarePod) -> Obj:
    """The hardened Deployment of one NVFlare process (one replica, never two side by side)."""
    template: Obj = {"metadata": {"labels": dict(pod.labels), "annotations": _annotations(pod)}, "spec": _pod_spec(pod)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels)},
        "spec": {
            "replicas": 1,
            # One identity, one process (and for the server one job store): never an old and a new pod at once.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(pod.selector)},
            "template": template,
        },
    }


def _annotations(pod: NvflarePod) -> dict[str, str]:
    annotations = {**pod.mesh_annotations, KIT_DIGEST: pod.kit_digest}
    if pod.workspace_bucket is not None:
        annotations["gke-gcsfuse/volumes"] = "true"  # GKE injects the gcsfuse sidecar
    return annotations


def _pod_spec(pod: NvflarePod) -> Obj:
    spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [_container(pod)],
        "volumes": _volumes(pod),
    }
    if pod.service_account is not None:
        spec["serviceAccountName"] = pod.service_account
    if pod.host_aliases:
        # The peer's certificate CN is checked, not its address: the dialled name is mapped here.
        spec["hostAliases"] = [{"ip": ip, "hostnames": list(names)} for ip, names in sorted(pod.host_aliases.items())]
    if pod.node_label is not None:
        key, value = pod.node_label
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]
                }
            }
        }
        spec["tolerations"] = [{"key": key, "operator": "Equal", "value": value, "effect": "NoExecute"}]
    return spec


def _container(pod: NvflarePod) -> Obj:
    root = kit_root(pod.participant)
    args = [
        "-u",
        "-m",
        pod.role.module,
        "-m",
        root,
        "-s",
        pod.role.config,
        "--set",
        "secure_train=true",
        f"uid={pod.participant}",
        "config_folder=config",
        f"org={pod.org}",
    ]
    mounts = [
        {"name": "kit", "mountPath": root},
        {"name": "startup", "mountPath": f"{root}/startup", "readOnly": True},
        {"name": "local", "mountPath": f"{root}/local", "readOnly": True},
    ]
    if pod.workspace_bucket is not None:
        mounts.append({"name": "workspace", "mountPath": WORKSPACE_MOUNT})
    mounts.append({"name": "tmp", "mountPath": "/tmp"})
    container: Obj = {
        "name": CONTAINER_NAME,
        "image": pod.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [PYTHON],
        "args": args,
        "env": list(PROCESS_ENV),
        "resources": {
            "requests": {**pod.requests, "ephemeral-storage": "1Gi"},
            # The kubelet evicts a pod whose emptyDirs and logs outgrow its containers' limits: hold both.
            "limits": {**pod.limits, "ephemeral-storage": f"{pod.kit_gi + TMP_GI}Gi"},
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if pod.ports:
        container["ports"] = [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in pod.ports.items()]
        # A client listens on nothing, so only a server is probed; a client's exit restarts its container.
        probe = {"tcpSocket": {"port": next(iter(pod.ports))}}
        container["startupProbe"] = {**probe, "periodSeconds": 5, "failureThreshold": 60}
        container["readinessProbe"] = {**probe, "periodSeconds": 10, "failureThreshold": 3}
        container["livenessProbe"] = {**probe, "periodSeconds": 20, "failureThreshold": 3}
    return container


def _volumes(pod: NvflarePod) -> list[Obj]:
    key = pod.role.key
    volumes: list[Obj] = [
        {"name": "kit", "emptyDir": {"sizeLimit": f"{pod.kit_gi}Gi"}},
        {
            "name": "startup",
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {"configMap": {"name": pod.startup_configmap}},
                    {"secret": {"name": pod.key_secret, "items": [{"key": key, "path": key, "mode": 0o440}]}},
                ],
            },
        },
        {"name": "local", "configMap": {"name": pod.local_configmap, "defaultMode": 0o444}},
    ]
    if pod.workspace_bucket is not None:
        volumes.append(
            {
                "name": "workspace",
                "csi": {
                    "driver": "gcsfuse.csi.storage.gke.io",
                    "volumeAttributes": {
                        "bucketName": pod.workspace_bucket,
                        "mountOptions": f"implicit-dirs,uid={RUN_AS_ID},gid={RUN_AS_ID},file-mode=664,dir-mode=775",
                    },
                },
            }
        )
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_GI}Gi"}})
    return volumes
