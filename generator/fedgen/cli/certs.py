"""`fedgen certs` and `fedgen rotate`: the certificate lifecycle (docs/certificates.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fedgen import api
from fedgen.cli import formatting, who_acts
from fedgen.cli.options import REPO_PATH, SPEC_PATH, STATE_HELP, confirm, deprecated, err, format_option, one_spec, spec_input, yes_option
from fedgen.cli.progress import progress_bar


@click.command()
@spec_input(positional=True)
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help="Repository whose default state to read.")
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option(
    "--within", "within_days", type=click.IntRange(min=0), default=30, show_default=True, help="Exit 1 when a certificate expires within this many days."
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def certs(spec: Path, repo: Path, state: str | None, within_days: int, fmt: str) -> None:
    """List every certificate of the federation with its expiry.

    Exit 1 when one is expired, expires within --within days, was never issued (run render, or approve an
    enrolled site's request), or is stale (an enrolled site approved under a previous root CA: approve its
    request again). Made for a scheduled CI job. NVFlare certificates are valid 360 days. Reads the state
    only (no lock).
    Then the offboarding check: participants removed from the spec whose certificates are still valid
    under the current root CA (NVFlare checks no revocation), until when, and what starting a new root
    CA, the one way to end them, requires from every remaining site (listed, not an exit 1).

    \b
    Spec: SPEC or --spec SPEC.
    Example:
      fedgen certs federation.yaml --within 30 --format json

    Exit codes: 0 all fine, 1 a certificate needs attention, 2 invalid input, 3 external failure (storage).
    """
    report = api.certificates(spec=spec, repo=repo, state=state, within_days=within_days)
    ctx = who_acts.Context(report.federation, spec, report.root_rotation.engine if report.root_rotation else "")
    click.echo(formatting.certificates_json(report, ctx) if fmt == "json" else formatting.certificates_text(report, ctx), nl=False)
    if report.needs_attention:
        sys.exit(1)


@click.command()
@click.argument("names", nargs=-1, metavar="[PARTICIPANT]")
@click.option("--spec", "spec", type=SPEC_PATH, metavar="SPEC", help="The federation spec (YAML).")
@click.option("--repo", type=REPO_PATH, default=".", show_default=True)
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option(
    "--root-ca",
    is_flag=True,
    help="Start a new root CA: every certificate is re-issued and every bundle must be redistributed. Irreversible: asks first (--yes) and copies the state beside itself.",
)
@yes_option
@format_option
def rotate(names: tuple[str, ...], spec: Path | None, repo: Path, state: str | None, root_ca: bool, yes: bool, fmt: str) -> None:
    """Re-issue one participant's key and certificate (or, with --root-ca, the root CA), then render.

    Everything else stays byte-identical. Rotating the server changes its ConfigMap and SealedSecret
    (commit them); rotating a site or admin changes no repo file: hand out a new bundle with
    `fedgen client-bundle PARTICIPANT --spec SPEC`. See docs/certificates.md for renewing the root CA.
    Ends with WHO MUST ACT (as render; --format json for CI); the previous certificate stays valid
    until it expires (NVFlare checks no revocation), which it says too.

    \b
    Spec: --spec SPEC (the older `fedgen rotate SPEC [PARTICIPANT]` still works, with a note).
    Example:
      fedgen rotate client2 --spec federation.yaml
      fedgen rotate --root-ca --spec federation.yaml --yes

    Exit codes: 0 rotated, 2 invalid input (unknown participant, not confirmed), 3 external failure.
    """
    participants = list(names)
    if spec is None and participants:  # the older shape: SPEC first
        spec = Path(participants.pop(0))
        what = "--root-ca" if root_ca and not participants else "PARTICIPANT"
        deprecated(f"fedgen rotate SPEC {what}", f"fedgen rotate {what} --spec SPEC")
    spec = one_spec(None, spec)
    if len(participants) > 1:
        raise click.UsageError(f"rotate one participant at a time (got {', '.join(participants)})")
    participant = participants[0] if participants else None
    if root_ca and participant is None:
        confirm(f"start a new root CA for the federation of {spec}", "every certificate is re-issued and every site and admin needs a new bundle", yes=yes)
    with progress_bar("issuing certificates") as bar:
        result = api.rotate(spec=spec, repo=repo, state=state, participant=participant, root_ca=root_ca, progress=bar)
    for line in [*formatting.backup_line(result.backup), *formatting.render_lines(result)]:
        err(line)
    err(f"done: {formatting.change_summary(result.plan)}")
    if fmt == "json":
        click.echo(who_acts.render_json(result, spec, "rotate"), nl=False)
        return
    for line in who_acts.who_must_act_lines(result.who_must_act, who_acts.render_context(result, spec)):
        err(line)
