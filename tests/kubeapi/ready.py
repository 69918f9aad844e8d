"""Make a rendered federation "ready" on a test API server the way the real parts would, with nothing of them
running: the engine's server-side apply (its own field manager), then the statuses its reconciler, the
kubelet with the deployment controller, the cloud load balancer and the Sealed Secrets controller write.
Single writes of the same kind let a test break one thing afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.kubeapi.cluster import ARGOCD, CONFIG_SYNC, Kubectl, apply_tree

Obj = dict[str, Any]


@dataclass
class Controllers:
    kubectl: Kubectl
    head: str  # the commit the engine reports as synced
    address: str  # what the cloud gives LoadBalancer Services

    def generation(self, kind: str, name: str, namespace: str | None) -> int:
        live = self.kubectl.get(kind, name, namespace)
        assert live is not None, f"{kind} {namespace}/{name} is not on the cluster"
        return int(live["metadata"]["generation"])

    def deployment(self, namespace: str, name: str, *, available: int = 1) -> None:
        gen = self.generation("deployment", name, namespace)
        condition = {
            "type": "Available",
            "status": "True" if available else "False",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
        }
        status = {
            "observedGeneration": gen,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [condition],
        }
        if not available:
            status["unavailableReplicas"] = 1
        self.kubectl.status("deployment", name, namespace, status)

    def sealed_secret(self, namespace: str, name: str) -> None:
        gen = self.generation("sealedsecret", name, namespace)
        self.kubectl.status(
            "sealedsecret", name, namespace, {"observedGeneration": gen, "conditions": [{"type": "Synced", "status": "True"}]}, manager="controller"
        )

    def load_balancer(self, namespace: str, name: str, address: str | None = None) -> None:
        self.kubectl.status("service", name, namespace, {"loadBalancer": {"ingress": [{"ip": address or self.address, "ipMode": "VIP"}]}})

    def rootsync(self, *, synced: str, fetched: str | None = None, errors: dict[str, list[dict[str, str]]] | None = None) -> None:
        gen = self.generation("rootsync", "fedgen", "config-management-system")
        status: dict[str, Any] = {
            "observedGeneration": gen,
            "source": {"commit": fetched or synced},
            "rendering": {"commit": fetched or synced},
            "sync": {"commit": synced},
            "lastSyncedCommit": synced,
        }
        for stage in ("source", "rendering", "sync"):
            status[stage]["errors"] = (errors or {}).get(stage)  # None clears earlier errors (merge patch)
        self.kubectl.status("rootsync", "fedgen", "config-management-system", status, manager="reconciler-manager")

    def application(self, name: str, *, sync: str = "Synced", health: str = "Healthy", message: str | None = None) -> None:
        # Argo CD's Application has no status subresource: its controller writes the object itself.
        status = {"sync": {"status": sync, "revision": self.head}, "health": {"status": health, **({"message": message} if message else {})}}
        self.kubectl.status("application", name, "argocd", status, manager="argocd-application-controller", subresource=False)

    def make_ready(self, objects: Sequence[Obj], *, cluster: str, engine: str = "config-sync") -> None:
        apply_tree(self.kubectl, objects, manager=CONFIG_SYNC if engine == "config-sync" else ARGOCD)
        for obj in objects:
            kind, meta = obj["kind"], obj["metadata"]
            if kind == "Deployment":
                self.deployment(meta["namespace"], meta["name"])
            elif kind == "SealedSecret":
                self.sealed_secret(meta["namespace"], meta["name"])
            elif kind == "Service" and obj["spec"].get("type") == "LoadBalancer":
                self.load_balancer(meta["namespace"], meta["name"])
        if engine == "config-sync":
            self.rootsync(synced=self.head)
        else:
            for app in (f"fedgen-{cluster}-root", f"fedgen-{cluster}"):
                self.application(app)
