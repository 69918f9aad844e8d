"""Commands for sites and storage: client-bundle, workspace push, state unlock. Thin: parse, call, print.

Registered on `fedgen.cli.main` at the bottom of cli.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fedgen.cli import handle_errors, unlock_first
from fedgen.cli_cluster import kube_options

if TYPE_CHECKING:
    from fedgen.workspace import PushAction

_STATE_HELP = "State folder or gs://bucket/prefix. Default: <repo>/.fedgen/state/<federation>."
_REPO_HELP = "GitOps repository (where the default state lives)."
FROM_CLUSTER = "from-cluster"


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.command("client-bundle")
@click.argument("name")
@click.option("--spec", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The federation spec.")
@click.option("--state", "state", metavar="LOCATION", help=_STATE_HELP)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Archive to write (not inside a repository unless git ignores it). Default: ~/fedgen-bundles/<federation>/<NAME>.tar.gz.",
)
@click.option(
    "--server-address",
    metavar="HOST_OR_IP|from-cluster",
    help="The server's external address, written into the run commands; `from-cluster` reads it from the server "
    "cluster's LoadBalancer Service (with --kubeconfig/--context, as fedgen status).",
)
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help=_REPO_HELP)
@kube_options
@handle_errors
def client_bundle(
    name: str, spec: Path, state: str | None, out: Path | None, server_address: str | None, repo: Path, kubeconfig: Path | None, contexts: tuple[str, ...], timeout: float
) -> None:
    """Write the bundle of site or admin NAME: its startup kit and how to run it.

    \b
    A tar.gz (keeps file modes: run.sh executable, the key 0600), written owner-only (0600),
    holding NAME/ with exactly that participant's kit plus README.md (docker, plain python,
    Kubernetes; for an admin: console and FLARE API), run.sh, k8s/ (sites), SHA256SUMS;
    and NAME.tar.gz.sha256 beside it. The same state gives the same bytes.

    \b
    Written to ~/fedgen-bundles/<federation>/NAME.tar.gz by default (folders 0700), outside
    the repository: the archive holds a private key. A path inside a git repository (--repo,
    the current one, any) is refused (exit 2) unless git ignores it; so is a path inside
    --repo when that folder is no git repository.

    \b
    Never writes the state: render first (`fedgen render SPEC`), so the bundle and the cluster
    share one CA. Takes no lock (it only reads one atomically saved state): bundles of one
    federation run in parallel. The server has no bundle: its kit reaches the cluster only
    through the render.
    """
    from fedgen.bundle import build_bundle, write_bundle

    if server_address == FROM_CLUSTER:
        from fedgen.status import server_address as cluster_address

        server_address = cluster_address(spec=spec, kubeconfig=kubeconfig, contexts=contexts, timeout=timeout)
        _err(f"server address from the cluster: {server_address}")
    bundle = build_bundle(spec=spec, name=name, state=state, repo=repo, server_address=server_address)
    written = write_bundle(bundle, out, repo=repo)
    click.echo(str(written.path))
    _err(f"wrote {written.path}: {bundle.kind} {bundle.name}, {len(bundle.archive)} bytes, owner-only (0600)")
    _err(f"sha256 {written.sha256} (in {written.checksum_path}); send it to {bundle.name} over a second channel")


@click.group()
def workspace() -> None:
    """The NVFlare server's workspace bucket (mounted at /workspace/nvfl by gcsfuse)."""


@workspace.command("push")
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--jobs",
    "jobs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A job folder (holding meta.json) to upload to <project>/<server>/transfer/<folder name>/. Repeatable.",
)
@click.option("--state", "state", metavar="LOCATION", help=_STATE_HELP)
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; upload nothing, take no lock (read access suffices).")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help=_REPO_HELP)
@click.option("--force-unlock", is_flag=True, help="First remove a stale state lock (as `fedgen state unlock` does).")
@handle_errors
def push(spec: Path, jobs: tuple[Path, ...], state: str | None, dry_run: bool, repo: Path, force_unlock: bool) -> None:
    """Upload what the server's workspace needs to the workspace bucket.

    \b
    Layout under gs://<bucket>/<project>/<server>/:
      jobs-storage/, snapshot-storage/   NVFlare's job store; the server creates them
      transfer/<job>/                    the admin transfer folder: the --jobs folders
    Skips objects whose CRC32C already matches; never deletes; refuses private keys
    (*.key, 'PRIVATE KEY'). Uploads carry generation preconditions and appear only when
    complete: after a dropped connection, rerun to finish. Uses Application Default
    Credentials (STORAGE_EMULATOR_HOST for an emulator; FEDGEN_GCS_RETRY_SECONDS bounds retries).
    """
    from fedgen.workspace import push as do_push

    if force_unlock:
        unlock_first(spec, state, repo)

    def show(url: str, action: PushAction) -> None:
        click.echo(f"{action.action}\t{url}")

    result = do_push(spec=spec, jobs=list(jobs), state=state, repo=repo, dry_run=dry_run, progress=None if dry_run else show)
    if dry_run:
        for action in result.changes:
            click.echo(f"{action.action}\tgs://{result.bucket}/{action.name}")
    for note in result.notes:
        _err(f"note: {note}")
    summary = f"{result.count('create')} created, {result.count('update')} updated, {result.count('unchanged')} unchanged"
    where = f"gs://{result.bucket}/{result.prefix}/"
    if dry_run:
        _err(f"dry run, nothing uploaded: would be {summary} in {where}")
    else:
        _err(f"done: {summary} in {where}")


@click.group("state")
def state_group() -> None:
    """The federation's state (root CA and every key): locks."""


@state_group.command("unlock")
@click.option("--state", "location", metavar="LOCATION", help="State folder or gs://bucket/prefix.")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), help="Without --state: the spec whose default state to check.")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help=_REPO_HELP)
@click.option("--force", is_flag=True, help="gs:// only: also remove a live lease held by another host (be sure that process is gone).")
@handle_errors
def unlock(location: str | None, spec: Path | None, repo: Path, force: bool) -> None:
    """Remove a stale lock left by a render, approve or push that died.

    \b
    gs://: the lock is a lease naming its holder (host, pid, user, command), renewed while
    the command runs and expiring 5 minutes after its last renewal (an expired lease is also
    taken over by the next command). Deletes <prefix>/lock when its holder is gone: a process
    of this host that no longer runs, or an expired lease. Refused (exit 3, naming the holder
    and when its lease ends) while its holder still runs on this host, and for a live lease
    of another host unless --force.
    A local folder: the lock is an flock the kernel drops when its holder exits, so it is never
    stale; this reports whether it is held and removes nothing (exit 3 while a live process
    holds it, --force or not).
    """
    from fedgen.errors import InputError
    from fedgen.state.unlock import force_unlock

    if location is None and spec is None:
        raise InputError("pass --state LOCATION (or --spec SPEC for its default local state)")
    federation = None
    if location is None and spec is not None:
        from fedgen.spec import load_federation

        federation = load_federation(spec).name
    result = force_unlock(location, repo.resolve(), federation, force=force)
    _err(result.message)
