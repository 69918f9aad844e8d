"""What one federation feeds into the files it shares with others, as its ledger records it.

Several federations of one repository feed each cluster's sync root kustomization, its bootstrap objects
and the Terraform variables. Each render records its contributions (render/shared.py makes them from the
spec), so the shared files can be recomputed from every federation's record, by any render, by `fedgen
remove` or by validate, without the other specs or their state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fedgen.refarch import REFERENCE_ARCHITECTURE


@dataclass(frozen=True)
class Contribution:
    """What one federation feeds into one cluster's shared files (one per cluster it uses)."""

    federation: str
    spec: str
    cluster: str
    tenant: str  # the server's tenant; empty on site clusters
    server: str  # the server's name; empty on site clusters
    resources: tuple[str, ...]  # folders the cluster's sync root includes, relative to it
    namespaces: tuple[str, ...]  # namespaces the federation's objects live in on this cluster
    gateway_ports: tuple[int, ...]  # ports taken on the shared ingress gateway (passthrough mode)
    gitops: dict[str, str]
    platform: str  # what the cluster runs on (fedgen.refarch.PLATFORM_KINDS)
    tfvars: dict[str, dict[str, Any]]  # values file -> variables (none on a standalone cluster)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Contribution:
        return cls(
            federation=str(doc["federation"]),
            spec=str(doc["spec"]),
            cluster=str(doc["cluster"]),
            tenant=str(doc["tenant"]),
            server=str(doc["server"]),
            resources=tuple(doc["resources"]),
            namespaces=tuple(doc["namespaces"]),
            gateway_ports=tuple(int(p) for p in doc["gateway_ports"]),
            gitops={str(k): str(v) for k, v in doc["gitops"].items()},
            platform=str(doc.get("platform", REFERENCE_ARCHITECTURE)),
            tfvars=_recorded_tfvars(doc),
        )


def _recorded_tfvars(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Ledgers written before the per-group split recorded one file (tfvars_file) and its variables: read
    as that one file, so the shared files those federations feed are recomputed as they were written
    (and removed once each has rendered again)."""
    if "tfvars_file" in doc:
        return {str(doc["tfvars_file"]): dict(doc["tfvars"])}
    return {str(path): dict(values) for path, values in doc["tfvars"].items()}
