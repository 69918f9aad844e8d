"""Asking the clusters: is the federation running (status), and pointing a cluster at its sync root (bootstrap)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.kube.client import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from fedgen.kube.bootstrap import BootstrapResult
    from fedgen.status import StatusReport

__all__ = ["DEFAULT_TIMEOUT", "bootstrap", "server_address", "status"]


def status(
    *,
    spec: Path,
    repo: Path = Path("."),
    kubeconfig: Path | None = None,
    contexts: Sequence[str] = (),
    admin_kit: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> StatusReport:
    """Ask every cluster of the federation (and, with admin_kit, its NVFlare server) how it is doing.

    InputError for a bad spec, repo, kubeconfig or bundle; an unreachable cluster or server is reported in the
    result (StatusReport.unreachable, exit_code 3), not raised."""
    from fedgen.status import check_federation

    return check_federation(spec=spec, repo=repo, kubeconfig=kubeconfig, contexts=contexts, admin_kit=admin_kit, timeout=timeout)


def bootstrap(
    *,
    cluster: str,
    repo: Path = Path("."),
    kubeconfig: Path | None = None,
    contexts: Sequence[str] = (),
    dry_run: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> BootstrapResult:
    """Server-side apply clusters/CLUSTER/bootstrap (field manager fedgen): point the GitOps engine at the sync root."""
    from fedgen.kube.bootstrap import bootstrap as apply_bootstrap

    return apply_bootstrap(cluster=cluster, repo=repo, kubeconfig=kubeconfig, contexts=contexts, dry_run=dry_run, timeout=timeout)


def server_address(*, spec: Path, kubeconfig: Path | None = None, contexts: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> str:
    """The external address the server cluster's LoadBalancer Service gives the server."""
    from fedgen.status import server_address as cluster_address

    return cluster_address(spec=spec, kubeconfig=kubeconfig, contexts=contexts, timeout=timeout)
