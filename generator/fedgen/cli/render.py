"""`fedgen render` and `fedgen remove`: write a federation into the repository, or take it out."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from fedgen import api
from fedgen.cli import formatting, who_acts
from fedgen.cli.options import REPO_PATH, STATE_HELP, confirm, err, format_option, spec_input, yes_option
from fedgen.cli.progress import progress_bar


@click.command()
@spec_input(positional=True)
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="GitOps repository to write into.")
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option(
    "--check",
    is_flag=True,
    help="Read-only: create nothing, take no lock (read access to the state is enough); exit 1 when the repo differs from what would be rendered or a sealing certificate changed.",
)
@click.option("--diff", "show_diff", is_flag=True, help="Print the unified diff of what changes (sealed values as sha256 digests, never ciphertext).")
@click.option(
    "--accept-sealing-cert",
    "accept_sealing_certs",
    metavar="SHA256:AA:BB:...",
    multiple=True,
    help="Seal to this sealing certificate although the state records another one for its cluster (after a controller key rotation, or for a new cluster). Repeatable.",
)
@click.option("--force-unlock", is_flag=True, help="First remove a stale state lock (as `fedgen state unlock` does).")
@click.option(
    "--new-root-ca",
    is_flag=True,
    help="Start a new root CA even though the repo holds a rendered federation with another (or the state has none): every site and admin needs a new bundle. Irreversible: asks first (--yes) and copies the state beside itself.",
)
@yes_option
@format_option
def render(
    spec: Path,
    repo: Path,
    state: str | None,
    check: bool,
    show_diff: bool,
    accept_sealing_certs: tuple[str, ...],
    force_unlock: bool,
    new_root_ca: bool,
    yes: bool,
    fmt: str,
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
    starts over on purpose (after a confirmation and a backup of the state) and lists whoever needs
    a new bundle.
    Seals only to the sealing certificate the state records for each cluster (the first render records
    them); a spec naming another one is refused unless its fingerprint is given to --accept-sealing-cert.
    Stops (exit 2) rather than overwrite or delete a file that changed since fedgen wrote it.
    Ends with WHO MUST ACT: the sites and admins whose kit changed and why (new participant, root CA,
    own certificate, server name, host name, port), with the command that makes each one's bundle;
    removed participants, and those whose certificates stay valid (NVFlare checks no revocation)
    with what a new root CA would require. --format json prints it for CI (docs/certificates.md).
    On a terminal, issuing certificates shows a progress bar on stderr.

    \b
    Spec: SPEC or --spec SPEC (see `fedgen schema`, examples/federation.yaml).
    Example:
      fedgen render federation.yaml                     # write the repo in the current folder
      fedgen render --spec federation.yaml --check --diff   # CI: exit 1 on drift, show it
      fedgen render federation.yaml --format json       # the same as JSON on stdout

    Exit codes: 0 written (or up to date), 1 drift (--check), 2 invalid input (spec, flags, a hand-edited
    file, a state with another root CA), 3 external failure (NVFlare, storage, lock held).
    """
    if show_diff and fmt == "json":
        raise click.UsageError("--diff prints the diff on stdout, where --format json prints its document: choose one")
    if new_root_ca and not check:
        confirm(f"start a new root CA for the federation of {spec}", "every certificate is re-issued and every site and admin needs a new bundle", yes=yes)
    if force_unlock:
        err(f"note: {api.unlock_before(spec=spec, state=state, repo=repo).message}")
    with progress_bar("issuing certificates") as bar:
        result = api.render(spec=spec, repo=repo, state=state, check=check, accept_sealing_certs=accept_sealing_certs, new_root_ca=new_root_ca, progress=bar)
    if show_diff:
        from fedgen.report.diff import unified_diff

        for change in result.plan.changes:
            click.echo(unified_diff(change.path, change.old, change.new), nl=False)
    for line in [*formatting.backup_line(result.backup), *formatting.render_lines(result)]:
        err(line)
    summary = formatting.change_summary(result.plan)
    if fmt == "json":
        click.echo(who_acts.render_json(result, spec, "render"), nl=False)
    if check:
        if result.plan.is_noop and not result.sealing_changes:
            err(f"up to date ({summary})")
            return
        for line in formatting.change_list(result.plan) if fmt == "text" else []:
            click.echo(line)
        for cert in result.sealing_changes:
            if fmt == "text":
                click.echo(f"sealing-certificate\t{cert.cluster}\t{' or '.join(cert.recorded) or 'none'} -> {cert.new}")
            err(f"drift: {cert.describe()}; not sealed to it: a render needs --accept-sealing-cert {cert.new}")
        if not result.plan.is_noop:
            err(f"drift: the repo differs from the render ({summary}); run fedgen render {shlex.quote(str(spec))}")
        sys.exit(1)
    err(f"done: {summary}")
    if fmt == "text":
        for line in who_acts.who_must_act_lines(result.who_must_act, who_acts.render_context(result, spec)):
            err(line)


@click.command()
@click.argument("federation")
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="The GitOps repository holding the federation.")
@click.option("--state", "state", metavar="LOCATION", help=f"The federation's state, copied beside itself before anything is removed. {STATE_HELP}")
@click.option("--check", is_flag=True, help="Only list what would be deleted or rewritten.")
@yes_option
@format_option
def remove(federation: str, repo: Path, state: str | None, check: bool, yes: bool, fmt: str) -> None:
    """Remove a federation (by metadata.name) from the repository.

    Deletes the files it owns, recomputes the files it shared with other federations (cluster sync roots,
    bootstrap, Terraform variables) and drops its ledger. Other federations' files are untouched. Needs no
    spec: the ledger .fedgen/owned/FEDERATION.json records what it wrote. Irreversible: asks first on a
    terminal (--yes for scripts) and copies the federation's state beside itself
    (state.json.backup-<time>); the state itself is left alone: remove it yourself once you are sure.
    Stops (exit 2) rather than delete or rewrite a file that changed since fedgen wrote it.
    Ends with the participants removed and the certificates of theirs that stay valid under the
    federation's root CA, and until when (NVFlare checks no revocation; --format json for CI).

    \b
    Example:
      fedgen remove imaging --check     # what would change
      fedgen remove imaging --yes       # do it, without asking

    Exit codes: 0 removed (or listed), 2 invalid input (unknown federation, a hand-edited file, not confirmed),
    3 external failure.
    """
    if not check and not yes:  # (an unknown federation is an error before the question)
        planned = api.remove(federation=federation, repo=repo, check=True).plan
        confirm(f"remove federation {federation} from {repo.resolve()}", f"{len(planned.changes)} files are deleted or rewritten", yes=yes)
    result = api.remove(federation=federation, repo=repo, check=check, state=state)
    if fmt == "json":
        click.echo(who_acts.remove_json(result, federation, check), nl=False)
    else:
        for line in formatting.change_list(result.plan):
            click.echo(line)
    for line in formatting.backup_line(result.backup):
        err(line)
    err(("would change" if check else "removed federation: changed") + f" {len(result.plan.changes)} files")
    if fmt == "text":
        for line in who_acts.removal_lines(result.who_must_act, result.state, check=check):
            err(line)
