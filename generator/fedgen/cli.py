"""The command line: thin click commands over fedgen.api. Exit codes: 0 ok, 1 findings or drift,
2 invalid input, 3 external failure."""

from __future__ import annotations

import difflib
import json
import shlex
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fedgen import __version__
from fedgen.errors import FedgenError, SpecErrors

if TYPE_CHECKING:
    from fedgen.api import RenderResult

F = TypeVar("F", bound=Callable[..., Any])
INTERNAL_EXIT = 3  # a bug or an interrupt: the documented codes are 0-3 only
ERROR_LINE_LIMIT = 2000


def _err(message: str) -> None:
    click.echo(message, err=True)


def handle_errors(fn: F) -> F:
    """One line per error on stderr and the error's exit code; a traceback only with --debug. Nothing leaves
    with a code outside 0-3: a bug or an interrupt is exit 3."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except FedgenError as exc:
            from fedgen.validate.finding import printable

            if debug:
                traceback.print_exc()
            # Positioned spec errors already read FILE:LINE:COL: message, one per line. Messages may quote
            # hostile input: control characters are shown escaped.
            lines = [printable(line, ERROR_LINE_LIMIT) for line in str(exc).split("\n")]
            _err("\n".join(lines) if isinstance(exc, SpecErrors) else f"error: {' '.join(lines)}")
            sys.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click reports usage errors itself (exit 2)
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(INTERNAL_EXIT)
        except Exception as exc:  # a bug: say so in one line, details with --debug
            from fedgen.validate.finding import printable

            if debug:
                traceback.print_exc()
            _err(f"internal error: {printable(f'{type(exc).__name__}: {exc}', ERROR_LINE_LIMIT)} (a bug; rerun with --debug)")
            sys.exit(INTERNAL_EXIT)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="fedgen")
def main(debug: bool) -> None:
    """Render an NVIDIA FLARE federation into a GitOps repository for GKE, and check it.

    \b
    Typical day:
      fedgen render federation.yaml     # provision kits, write clusters/ tenants/ terraform/
      git diff && git commit            # review what changed
      fedgen validate                   # the PR check (no state, no network)

    Exit codes: 0 ok, 1 findings or drift, 2 invalid input, 3 external failure.
    """
    from fedgen.scratch import sweep

    sweep()  # key folders a killed fedgen left in the temporary folder


@main.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help="GitOps repository to write into.")
@click.option("--state", "state", metavar="LOCATION", help="State folder or gs://bucket/prefix. Default: <repo>/.fedgen/state/<federation> (git-ignored, owner-only).")
@click.option("--check", is_flag=True, help="Read-only: create nothing, take no lock (read access to the state is enough); exit 1 when the repo differs from what would be rendered or a sealing certificate changed.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the unified diff of what changes (sealed values as sha256 digests, never ciphertext).")
@click.option("--accept-sealing-cert", "accept_sealing_certs", metavar="SHA256:AA:BB:...", multiple=True, help="Seal to this sealing certificate although the state records another one for its cluster (after a controller key rotation, or for a new cluster). Repeatable.")
@click.option("--force-unlock", is_flag=True, help="First remove a stale state lock (as `fedgen state unlock` does).")
@click.option("--new-root-ca", is_flag=True, help="Start a new root CA even though the repo holds a rendered federation with another (or the state has none): every site and admin needs a new bundle.")
@handle_errors
def render(
    spec: Path, repo: Path, state: str | None, check: bool, show_diff: bool, accept_sealing_certs: tuple[str, ...], force_unlock: bool, new_root_ca: bool
) -> None:
    """Provision the federation's kits from the state and write the repo.

    \b
    Incremental: adding a site issues one certificate and leaves every other file byte-identical.
    Deterministic: the same spec and state give the same bytes, SealedSecrets included.
    The state holds the CA and every private key: keep it out of git (the default location is ignored).
    It must be owner-only (like ssh keys: anything else is refused with the chmod that fixes it)
    and may not live in a bucket the federation's workloads mount.
    No silent new CA: when the repo already holds the rendered federation and the state has no
    root CA or another one (lost state, mistyped --state), render stops (exit 2); --new-root-ca
    starts over on purpose and lists whoever needs a new bundle.
    Seals only to the sealing certificate the state records for each cluster (the first render records
    them); a spec naming another one is refused unless its fingerprint is given to --accept-sealing-cert.
    Stops (exit 2) rather than overwrite or delete a file that changed since fedgen wrote it.
    """
    from fedgen.api import render as do_render

    if force_unlock:
        unlock_first(spec, state, repo)
    result = do_render(spec=spec, repo=repo, state=state, check=check, accept_sealing_certs=accept_sealing_certs, new_root_ca=new_root_ca)
    if show_diff:
        for change in result.plan.changes:
            click.echo(_unified(change.path, change.old, change.new), nl=False)
    summary = print_render_summary(result, final=False)
    if check:
        if result.plan.is_noop and not result.sealing_changes:
            _err(f"up to date ({summary})")
            return
        for change in result.plan.changes:
            click.echo(f"{change.action}\t{change.path}")
        for cert in result.sealing_changes:
            click.echo(f"sealing-certificate\t{cert.cluster}\t{' or '.join(cert.recorded) or 'none'} -> {cert.new}")
            _err(f"drift: {cert.describe()}; not sealed to it: a render needs --accept-sealing-cert {cert.new}")
        if not result.plan.is_noop:
            _err(f"drift: the repo differs from the render ({summary}); run fedgen render {shlex.quote(str(spec))}")
        sys.exit(1)
    _err(f"done: {summary}")
    if new_root_ca:
        print_redistribution(result, spec, new_root=True)


def unlock_first(spec: Path, state: str | None, repo: Path) -> None:
    """--force-unlock: remove a stale lock of the spec's state before the command takes it."""
    from fedgen.spec import load_federation
    from fedgen.state.unlock import force_unlock

    _err(f"note: {force_unlock(state, repo.resolve(), load_federation(spec).name).message}")


def print_render_summary(result: RenderResult, *, final: bool = True) -> str:
    """Notes, warnings, issued certificates on stderr; returns the one-line count of changes."""
    for note in result.notes:
        _err(f"note: {note}")
    for warning in result.warnings:
        _err(f"warning: {warning}")
    if result.issued:
        _err(f"issued certificates: {', '.join(result.issued)}")
    counts = {a: sum(1 for c in result.plan.changes if c.action == a) for a in ("create", "update", "delete")}
    summary = f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, {len(result.plan.unchanged)} unchanged"
    if final:
        _err(f"done: {summary}")
    return summary


def print_redistribution(result: RenderResult, spec: Path, *, new_root: bool) -> None:
    """Who needs something new after certificates were re-issued: bundles, the server, and after a new root
    CA the sites that enroll by request (their certificates chain to the old root)."""
    fed = result.federation
    server = fed.server.name
    quoted = shlex.quote(str(spec))
    to_hand_out = [n for n in result.issued if n != server]
    if to_hand_out:
        _err(f"redistribute bundles: {', '.join(to_hand_out)} (fedgen client-bundle NAME --spec {quoted})")
    if server in result.issued:
        _err("the server's kit changed: commit the rendered files so Config Sync rolls the server")
    enrolled = sorted(s.name for s in fed.sites if s.enrollment == "request")
    if enrolled and new_root:
        _err(f"approve again under the new root CA: {', '.join(enrolled)} (fedgen enroll approve REQUEST --spec {quoted})")


def _unified(path: str, old: bytes | None, new: bytes | None) -> str:
    """The unified diff of one file; sealed values appear as digests (a diff is printed in CI logs)."""
    from fedgen.sealing import redact_ciphertext

    a = redact_ciphertext((old or b"").decode(errors="replace")).splitlines(keepends=True)
    b = redact_ciphertext((new or b"").decode(errors="replace")).splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, fromfile=f"a/{path}" if old is not None else "/dev/null", tofile=f"b/{path}" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@main.command()
@click.argument("federation")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True)
@click.option("--check", is_flag=True, help="Only list what would be deleted or rewritten.")
@handle_errors
def remove(federation: str, repo: Path, check: bool) -> None:
    """Remove a federation (by metadata.name) from the repository.

    Deletes the files it owns, recomputes the files it shared with other federations (cluster sync roots,
    bootstrap, Terraform variables) and drops its ledger. Other federations' files are untouched. The
    state is not deleted: remove it yourself once you are sure. Stops (exit 2) rather than delete or
    rewrite a file that changed since fedgen wrote it.
    """
    from fedgen.api import remove as do_remove

    plan = do_remove(federation=federation, repo=repo, check=check)
    for change in plan.changes:
        click.echo(f"{change.action}\t{change.path}")
    _err(("would change" if check else "removed federation: changed") + f" {len(plan.changes)} files")


@main.command()
@handle_errors
def schema() -> None:
    """Print the JSON Schema of the federation spec (for editors and CI)."""
    from fedgen.spec.schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=2))


from fedgen.cli_certs import certs, rotate  # noqa: E402  (commands in their own modules register here)

main.add_command(certs)
main.add_command(rotate)

from fedgen.cli_sites import client_bundle, state_group, workspace  # noqa: E402

main.add_command(client_bundle)
main.add_command(workspace)
main.add_command(state_group)

from fedgen.cli_validate import validate  # noqa: E402 - registered last: cli_validate uses handle_errors at call time
main.add_command(validate)

from fedgen.cli_enroll import enroll  # noqa: E402
main.add_command(enroll)

from fedgen.cli_cluster import bootstrap, status  # noqa: E402
main.add_command(status)
main.add_command(bootstrap)
