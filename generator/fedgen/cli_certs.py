"""`fedgen certs` and `fedgen rotate`: the certificate lifecycle commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fedgen.cli import handle_errors, print_redistribution, print_render_summary


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help="Repository whose default state to read.")
@click.option("--state", "state", metavar="LOCATION", help="State folder or gs://bucket/prefix (default <repo>/.fedgen/state/<federation>).")
@click.option("--within", "within_days", type=click.IntRange(min=0), default=30, show_default=True, help="Exit 1 when a certificate expires within this many days.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def certs(spec: Path, repo: Path, state: str | None, within_days: int, fmt: str) -> None:
    """List every certificate of the federation with its expiry.

    Exit 1 when one is expired, expires within --within days, was never issued (run render, or approve an
    enrolled site's request), or is stale (an enrolled site approved under a previous root CA: approve its
    request again). Made for a scheduled CI job. NVFlare certificates are valid 360 days.
    """
    from fedgen.certs import certificate_report, needs_attention
    from fedgen.spec import load_federation
    from fedgen.state import federation_store

    fed = load_federation(spec)
    report = certificate_report(fed, federation_store(fed, state, repo.resolve()).load(), within_days=within_days)
    if fmt == "json":
        rows = [
            {"name": c.name, "kind": c.kind, "status": c.status, "not_after": c.not_after.isoformat() if c.not_after else None, "days_left": c.days_left, "sha256": c.sha256}
            for c in report
        ]
        click.echo(json.dumps({"certificates": rows}, indent=2))
    else:
        width = max(len(c.name) for c in report)
        for c in report:
            expiry = f"{c.not_after:%Y-%m-%d} ({c.days_left} days)" if c.not_after else "-"
            click.echo(f"{c.name:<{width}}  {c.kind:<6}  {c.status:<10}  {expiry}")
    if needs_attention(report):
        sys.exit(1)


@click.command()
@click.argument("spec", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("participant", required=False)
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True)
@click.option("--state", "state", metavar="LOCATION", help="State folder or gs://bucket/prefix (default <repo>/.fedgen/state/<federation>).")
@click.option("--root-ca", is_flag=True, help="Start a new root CA: every certificate is re-issued and every bundle must be redistributed.")
@handle_errors
def rotate(spec: Path, participant: str | None, repo: Path, state: str | None, root_ca: bool) -> None:
    """Re-issue one participant's key and certificate, then render.

    Everything else stays byte-identical. Rotating the server changes its ConfigMap and SealedSecret
    (commit them); rotating a site or admin changes no repo file: hand out a new bundle with
    `fedgen client-bundle PARTICIPANT --spec SPEC`. See docs/certificates.md for renewing the root CA.
    """
    from fedgen.api import render

    if bool(participant) == root_ca:
        raise click.UsageError("name exactly one PARTICIPANT, or pass --root-ca")
    result = render(spec=spec, repo=repo, state=state, reissue=[participant] if participant else [], new_root_ca=root_ca)
    print_render_summary(result)
    print_redistribution(result, spec, new_root=root_ca)
