"""Commands that talk to the clusters: status, bootstrap. Thin: parse, call, print.

Registered on `fedgen.cli.main` at the bottom of cli.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from fedgen.cli import handle_errors
from fedgen.kube.client import DEFAULT_TIMEOUT

KUBECONFIG_HELP = "Kubeconfig to read. Default: $KUBECONFIG, else ~/.kube/config."
CONTEXT_HELP = (
    "Kubeconfig context of a cluster, as CLUSTER=CONTEXT (repeatable), or CONTEXT alone for a one-cluster "
    "federation. Default: gke_<projectId>_<region>_<cluster> (what gcloud writes), else a context named like the cluster."
)
TIMEOUT_HELP = "Seconds to wait for each request to a cluster or the NVFlare server."
F = TypeVar("F", bound=Callable[..., Any])


def kube_options(fn: F) -> F:
    """--kubeconfig, --context (repeatable) and --timeout, shared by the commands that ask clusters."""
    fn = click.option("--timeout", type=click.FloatRange(min=0.5, max=300), default=DEFAULT_TIMEOUT, show_default=True, help=TIMEOUT_HELP)(fn)
    fn = click.option("--context", "contexts", multiple=True, metavar="[CLUSTER=]CONTEXT", help=CONTEXT_HELP)(fn)
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), help=KUBECONFIG_HELP)(fn)
    return fn


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help="The GitOps repository (a git checkout): its HEAD and its built sync roots are what the clusters should run.")
@kube_options
@click.option("--admin", "admin_kit", type=click.Path(path_type=Path), metavar="BUNDLE", help="An admin's bundle (tar.gz from fedgen client-bundle) or kit folder: also log in to the NVFlare server and list the connected sites.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def status(spec: Path, repo: Path, kubeconfig: Path | None, contexts: tuple[str, ...], timeout: float, admin_kit: Path | None, fmt: str) -> None:
    """Is the federation applied, synced, rolled out, reachable, and are its sites connected?

    \b
    Asks every cluster the spec renders a sync root for (kubernetes client, read only):
      engine        RootSync fedgen (Config Sync) or the Argo CD Applications: synced the repo's
                    HEAD (git rev-parse HEAD of --repo), no fetch/render/sync errors, healthy
      objects       every object of the built sync root (kubectl kustomize) exists, applied by the
                    engine's field manager and by nobody else (hand edits and other syncs are named)
      deployment    rolled out with the rendered pod template (kit digest), available; restarts
      sealedsecret  unsealed by the controller (its Synced condition)
      address       the server's LoadBalancer address, and whether the name in every bundle
                    (server.hostNames[0]) is that address or resolves to it
      sites         with --admin: the sites connected to the NVFlare server (FLARE API), missing ones named
    Text prints one line per check, then each problem with what to do; --format json prints
    {"ready": bool, "problems": [...], "clusters": [...]}.

    Exit codes: 0 ready, 1 not ready, 2 bad input (spec, repo, kubeconfig, context, bundle),
    3 a cluster or the NVFlare server unreachable, or the credentials refused (the message says which).
    """
    from fedgen.status import FORMATS, check_federation

    report = check_federation(spec=spec, repo=repo, kubeconfig=kubeconfig, contexts=contexts, admin_kit=admin_kit, timeout=timeout)
    click.echo(FORMATS[fmt](report), nl=False)
    for reason in report.unreachable:
        click.echo(f"error: {reason}", err=True)
    sys.exit(report.exit_code)


@click.command()
@click.argument("cluster")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help="The GitOps repository holding clusters/CLUSTER/bootstrap.")
@kube_options
@click.option("--dry-run", is_flag=True, help="Ask the API server to validate the apply without persisting anything.")
@handle_errors
def bootstrap(cluster: str, repo: Path, kubeconfig: Path | None, contexts: tuple[str, ...], timeout: float, dry_run: bool) -> None:
    """Point the cluster's GitOps engine at its sync root: apply clusters/CLUSTER/bootstrap.

    \b
    Builds the folder with kubectl kustomize and applies each object with server-side apply, field
    manager `fedgen` (the RootSync `fedgen`, or Argo CD's root Application). Run it once per cluster
    after the first render is pushed, and again whenever a render changes that folder. Config Sync or
    Argo CD must already be installed on the cluster.
    Context: --context CONTEXT, else gke_<project>_<region>_CLUSTER (when exactly one such context
    exists), else a context named CLUSTER.
    """
    from fedgen.kube.bootstrap import bootstrap as do_bootstrap

    result = do_bootstrap(cluster=cluster, repo=repo, kubeconfig=kubeconfig, contexts=contexts, dry_run=dry_run, timeout=timeout)
    for applied in result.applied:
        click.echo(f"{applied.action}\t{applied.object}")
    click.echo(f"{'checked' if dry_run else 'applied'} {len(result.applied)} objects on cluster {cluster} (context {result.context}, {result.server})", err=True)
