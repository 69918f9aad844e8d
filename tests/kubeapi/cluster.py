"""Working with a test API server through the real kubectl: CRDs, namespaces, server-side apply, prune, and
the status a kubelet or controller would write (there are none)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.kubeapi import crds
from tests.support import kustomize_build, tool

Obj = dict[str, Any]
CONFIG_SYNC = "configsync.gke.io"  # Config Sync's field manager: what the tests apply sync roots with
ARGOCD = "argocd-controller"
# What the platform (or the engine's installation) creates, never fedgen's render.
PLATFORM_NAMESPACES = ("config-management-system", "argocd", "istio-ingress", "istio-system", "kube-system")


class Kubectl:
    """kubectl with one kubeconfig (and context); in a network namespace when the server is only reachable there."""

    def __init__(self, kubeconfig: Path, context: str | None = None, *, netns: str | None = None) -> None:
        self.kubeconfig, self.context, self.netns = kubeconfig, context, netns

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [tool("kubectl"), f"--kubeconfig={self.kubeconfig}", *([f"--context={self.context}"] if self.context else []), *args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        proc = self("get", kind, name, "-o", "json", "--show-managed-fields", *(["-n", namespace] if namespace else []), check=False)
        if proc.returncode != 0:
            assert "NotFound" in proc.stderr, proc.stderr
            return None
        return json.loads(proc.stdout)

    def apply(
        self, objects: Sequence[Obj], *, manager: str, extra: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        return self("apply", "--server-side", f"--field-manager={manager}", "--validate=strict", *extra, "-f", "-", input=text, env=env)

    def status(
        self, kind: str, name: str, namespace: str | None, status: Mapping[str, Any], *, manager: str = "kube-controller-manager", subresource: bool = True
    ) -> None:
        """Write .status as the controller would (merge patch; through the status subresource when the CRD has one)."""
        args = ["patch", kind, name, "--type=merge", f"--field-manager={manager}", "-p", json.dumps({"status": status})]
        if subresource:
            args.append("--subresource=status")
        self(*args, *(["-n", namespace] if namespace else []))


def docs(text: str) -> list[Obj]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def build(folder: Path) -> list[Obj]:
    return docs(kustomize_build(folder))


def identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        str(obj["apiVersion"]).split("/")[0] if "/" in str(obj["apiVersion"]) else "",
        str(obj["kind"]),
        str(meta.get("namespace") or ""),
        str(meta["name"]),
    )


# A cluster-scoped ApplySet parent: kubectl's prune (--applyset) records the set in it; a namespaced parent
# would confine the set to one namespace.
APPLYSET_PARENT = "applysets.test.fedgen.invalid"
APPLYSET_PARENT_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": APPLYSET_PARENT, "labels": {"applyset.kubernetes.io/is-parent-type": "true"}},
    "spec": {
        "group": "test.fedgen.invalid",
        "names": {"kind": "ApplySet", "listKind": "ApplySetList", "plural": "applysets", "singular": "applyset"},
        "scope": "Cluster",
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}],
    },
}


def install_crds(kubectl: Kubectl, timeout: float = 180, *, kinds: Collection[tuple[str, str]] | None = None) -> None:
    """Apply the CRDs (all, or those of `kinds`: (group, Kind) pairs) and the test's ApplySet parent, and wait
    until every one is Established (kubectl wait fails while a CRD has no conditions yet, so poll instead)."""
    definitions = [*crds.definitions(kinds), APPLYSET_PARENT_CRD]
    kubectl.apply(definitions, manager="fedgen-test")
    wanted = {d["metadata"]["name"] for d in definitions}
    deadline = time.monotonic() + timeout
    while True:
        items = json.loads(kubectl("get", "crd", "-o", "json").stdout)["items"]
        established = {
            i["metadata"]["name"]
            for i in items
            if any(c["type"] == "Established" and c["status"] == "True" for c in (i.get("status") or {}).get("conditions") or [])
        }
        if wanted <= established:
            return
        assert time.monotonic() < deadline, f"CRDs not established within {timeout} s: {sorted(wanted - established)}"
        time.sleep(0.5)


def ensure_namespaces(kubectl: Kubectl, names: Iterable[str]) -> None:
    """Namespaces the platform would have made (objects of the render live in them)."""
    wanted = sorted(set(names))
    if wanted:
        kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in wanted], manager="fedgen-test-platform")


def apply_tree(kubectl: Kubectl, objects: Sequence[Obj], *, manager: str, extra: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
    """Server-side apply as an engine would: the Namespaces the render holds first (a namespaced object
    cannot be created before its Namespace exists), then everything, in one kubectl call per step."""
    rendered_ns = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    used_ns = {o["metadata"].get("namespace") for o in objects} - {None} - rendered_ns
    ensure_namespaces(kubectl, used_ns)
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    if namespaces:
        kubectl.apply(namespaces, manager=manager, extra=[e for e in extra if not e.startswith(("--prune", "--applyset"))], env=env)
    kubectl.apply(objects, manager=manager, extra=extra, env=env)
