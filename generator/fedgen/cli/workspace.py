"""`fedgen workspace push`: the NVFlare server's workspace bucket."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fedgen import api
from fedgen.cli.options import REPO_PATH, STATE_HELP, err, spec_input

if TYPE_CHECKING:
    from fedgen.workspace import PushAction


@click.group()
def workspace() -> None:
    """The NVFlare server's workspace bucket (mounted at /workspace/nvfl by gcsfuse)."""


@workspace.command("push")
@spec_input(positional=True)
@click.option(
    "--jobs",
    "jobs",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="A job folder (holding meta.json) to upload to <project>/<server>/transfer/<folder name>/. Repeatable.",
)
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be uploaded: reads no state, takes no lock, uploads nothing; lists the bucket with your "
    "credentials, or anonymously without any (enough for a bucket that allows public listing).",
)
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="GitOps repository (where the default state lives).")
@click.option("--force-unlock", is_flag=True, help="First remove a stale state lock (as `fedgen state unlock` does).")
def push(spec: Path, jobs: tuple[Path, ...], state: str | None, dry_run: bool, repo: Path, force_unlock: bool) -> None:
    """Upload what the server's workspace needs to the workspace bucket.

    \b
    Layout under gs://<bucket>/<project>/<server>/:
      jobs-storage/, snapshot-storage/   NVFlare's job store; the server creates them
      transfer/<job>/                    the admin transfer folder: the --jobs folders
    Skips objects whose CRC32C already matches; never deletes; refuses private keys
    (*.key, 'PRIVATE KEY'). Uploads carry generation preconditions and appear only when
    complete: after a dropped connection, rerun to finish. Holds the state's lock and checks
    the state belongs to the federation. Uses Application Default Credentials
    (STORAGE_EMULATOR_HOST for an emulator; FEDGEN_GCS_RETRY_SECONDS bounds retries).
    Permissions: a push needs roles/storage.objectUser on the bucket; --dry-run only
    storage.objects.list (roles/storage.objectViewer), and a refusal names what is missing.

    \b
    Spec: SPEC or --spec SPEC.
    Example:
      fedgen workspace push federation.yaml --jobs jobs/hello-numpy --dry-run

    Exit codes: 0 pushed (or listed), 2 invalid input (spec, a job folder, a key inside), 3 external
    failure (storage, permissions, lock held).
    """
    if force_unlock:
        err(f"note: {api.unlock_before(spec=spec, state=state, repo=repo).message}")

    def show(url: str, action: PushAction) -> None:
        click.echo(f"{action.action}\t{url}")

    result = api.workspace_push(spec=spec, jobs=jobs, state=state, repo=repo, dry_run=dry_run, progress=None if dry_run else show)
    if dry_run:
        for action in result.changes:
            click.echo(f"{action.action}\tgs://{result.bucket}/{action.name}")
    for note in result.notes:
        err(f"note: {note}")
    summary = f"{result.count('create')} created, {result.count('update')} updated, {result.count('unchanged')} unchanged"
    where = f"gs://{result.bucket}/{result.prefix}/"
    if dry_run:
        err(f"dry run, nothing uploaded: would be {summary} in {where}")
    else:
        err(f"done: {summary} in {where}")
