"""Commands that talk to the clusters: `fedgen status` and `fedgen bootstrap`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fedgen import api
from fedgen.cli.options import REPO_PATH, err, kube_options, spec_input


@click.command()
@spec_input(positional=True)
@click.option(
    "--repo",
    type=REPO_PATH,
    default=".",
    show_default=True,
    help="The GitOps repository (a git checkout): its HEAD and its built sync roots are what the clusters should run.",
)
@kube_options
@click.option(
    "--admin",
    "admin_kit",
    type=click.Path(path_type=Path),
    metavar="BUNDLE",
    help="An admin's bundle (tar.gz from fedgen client-bundle) or kit folder: also log in to the NVFlare server and list the connected sites.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
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

    \b
    Spec: SPEC or --spec SPEC.
    Example:
      fedgen status federation.yaml --admin ~/fedgen-bundles/example_project/admin@nvidia.com.tar.gz

    Exit codes: 0 ready, 1 not ready, 2 bad input (spec, repo, kubeconfig, context, bundle),
    3 a cluster or the NVFlare server unreachable, or the credentials refused (the message says which).
    """
    from fedgen.report import STATUS_FORMATS

    report = api.status(spec=spec, repo=repo, kubeconfig=kubeconfig, contexts=contexts, admin_kit=admin_kit, timeout=timeout)
    click.echo(STATUS_FORMATS[fmt](report), nl=False)
    for reason in report.unreachable:
        err(f"error: {reason}")
    sys.exit(report.exit_code)


@click.command()
@click.argument("cluster")
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="The GitOps repository holding clusters/CLUSTER/bootstrap.")
@kube_options
@click.option("--dry-run", is_flag=True, help="Ask the API server to validate the apply without persisting anything.")
def bootstrap(cluster: str, repo: Path, kubeconfig: Path | None, contexts: tuple[str, ...], timeout: float, dry_run: bool) -> None:
    """Point the cluster's GitOps engine at its sync root: apply clusters/CLUSTER/bootstrap.

    \b
    Builds the folder with kubectl kustomize and applies each object with server-side apply, field
    manager `fedgen` (the RootSync `fedgen`, or Argo CD's root Application). Run it once per cluster
    after the first render is pushed, and again whenever a render changes that folder. Config Sync or
    Argo CD (whichever the spec names) must already be installed on the cluster. Reads no spec: the
    rendered folder says everything.
    Context: --context CONTEXT, else gke_<project>_<region>_CLUSTER (when exactly one such context
    exists), else a context named CLUSTER.

    \b
    Example:
      fedgen bootstrap acp-dev --dry-run

    Exit codes: 0 applied, 2 invalid input (no such cluster rendered, kubeconfig, context),
    3 the cluster unreachable or the apply refused.
    """
    result = api.bootstrap(cluster=cluster, repo=repo, kubeconfig=kubeconfig, contexts=contexts, dry_run=dry_run, timeout=timeout)
    for applied in result.applied:
        click.echo(f"{applied.action}\t{applied.object}")
    err(f"{'checked' if dry_run else 'applied'} {len(result.applied)} objects on cluster {cluster} (context {result.context}, {result.server})")
