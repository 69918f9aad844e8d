"""What `fedgen status` found: checks per cluster, each with the problems it saw and what to do about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    message: str  # what is wrong
    fix: str  # what to do


@dataclass(frozen=True)
class Check:
    name: str  # engine, objects, deployment NS/NAME, sealedsecret NS/NAME, address, sites
    detail: str  # one line: what was seen
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "problems": [p.__dict__ for p in self.problems]}


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    context: str
    server: str  # API server URL ("" when the credentials could not even be loaded)
    checks: tuple[Check, ...] = ()
    unreachable: tuple[str, ...] = ()  # why the cluster (or the NVFlare server) could not be asked
    facts: dict[str, Any] = field(default_factory=dict)  # engine commit, address: for scripts

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "context": self.context,
            "server": self.server,
            "reachable": not self.unreachable,
            "errors": list(self.unreachable),
            "ready": not self.unreachable and all(c.ok for c in self.checks),
            "checks": [c.to_json() for c in self.checks],
            **self.facts,
        }


@dataclass(frozen=True)
class StatusReport:
    federation: str
    head: str
    clusters: tuple[ClusterStatus, ...]

    @property
    def unreachable(self) -> list[str]:
        return [reason for c in self.clusters for reason in c.unreachable]

    @property
    def problems(self) -> list[dict[str, str]]:
        out = []
        for cluster in self.clusters:
            for reason in cluster.unreachable:
                out.append({"cluster": cluster.name, "check": "connection", "message": reason,
                            "fix": "check the network path, the kubeconfig context (or admin kit) and its credentials"})  # fmt: skip
            for check in cluster.checks:
                for p in check.problems:
                    out.append({"cluster": cluster.name, "check": check.name, "message": p.message, "fix": p.fix})
        return out

    @property
    def ready(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 ready, 3 a cluster or the NVFlare server could not be asked, 1 otherwise."""
        if self.unreachable:
            return 3
        return 0 if self.ready else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "federation": self.federation,
            "head": self.head,
            "problems": self.problems,
            "clusters": [c.to_json() for c in self.clusters],
        }
