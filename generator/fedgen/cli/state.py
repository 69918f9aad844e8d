"""`fedgen state unlock`: the federation's state (root CA and every key) and its locks."""

from __future__ import annotations

from pathlib import Path

import click

from fedgen import api
from fedgen.cli import formatting
from fedgen.cli.options import REPO_PATH, SPEC_PATH, confirm, err, yes_option


@click.group("state")
def state() -> None:
    """The federation's state (root CA and every key): locks."""


@state.command("unlock")
@click.option("--state", "location", metavar="LOCATION", help="State folder or gs://bucket/prefix.")
@click.option("--spec", type=SPEC_PATH, metavar="SPEC", help="Without --state: the spec whose default state to check.")
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="GitOps repository (where the default state lives).")
@click.option(
    "--force",
    is_flag=True,
    help="gs:// only: also remove a live lease held by another host (be sure that process is gone). Irreversible: "
    "asks first (--yes) and copies the state beside itself.",
)
@yes_option
def unlock(location: str | None, spec: Path | None, repo: Path, force: bool, yes: bool) -> None:
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

    \b
    Spec: --state LOCATION, or --spec SPEC for the spec's default local state.
    Example:
      fedgen state unlock --state gs://my-state-bucket/example_project

    Exit codes: 0 unlocked (or not locked), 2 invalid input (neither --state nor --spec, not confirmed),
    3 still held (the message names the holder), storage failure.
    """
    if force:
        confirm(f"remove the lock of state {location or spec} even if its holder still runs on another host", "that command can then save nothing", yes=yes)
    result = api.state_unlock(state=location, spec=spec, repo=repo, force=force)
    for line in formatting.backup_line(result.backup):
        err(line)
    err(result.message)
