"""`fedgen enroll kit` and `fedgen enroll approve`: sites that keep their own keys (docs/enrollment.md).

Registered on `fedgen.cli.main` at the bottom of cli.py. Thin: parse, call fedgen.enroll, print.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from fedgen.cli import handle_errors

_STATE_HELP = "State folder or gs://bucket/prefix. Default: <repo>/.fedgen/state/<federation>."
_REPO_HELP = "The GitOps repository (rendered; where the default state lives)."


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def enroll() -> None:
    """Sites that keep their own keys: enrollment by pull request.

    \b
    For sites declared with `enrollment: request` in the spec. The site makes its key and
    a request with NVFlare's `nvflare cert request`; the request zip (CSR and metadata, no
    key) reaches the repo by pull request; the operator approves it, which commits a signed
    zip (certificate and rootCA.pem, no key); the site builds its kit with `nvflare package`.
    Files live in enrollment/<federation>/requests/ and enrollment/<federation>/signed/.
    """


@enroll.command("kit")
@click.argument("site")
@click.option("--spec", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The federation spec.")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help=_REPO_HELP)
@click.option("--state", "state", metavar="LOCATION", help=_STATE_HELP)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Folder to write. Default: ./<SITE>-enroll/.")
@handle_errors
def kit(site: str, spec: Path, repo: Path, state: str | None, out: Path | None) -> None:
    """Write what site SITE needs to request its certificate.

    \b
    participant.yaml       for `nvflare cert request -p participant.yaml`
    project_profile.yaml   the project profile approvals sign with (for reference)
    ROOTCA_FINGERPRINT     the root CA's SHA-256 fingerprint, to confirm out of band
    README.md              the exact commands: request, the key's fingerprint to send over a
                           second channel, pull request, nvflare package, run
    No key, and nothing secret: the root CA certificate comes from the state when it can be
    read (no lock taken), otherwise from the rendered ConfigMap nvflare-<server>-startup.
    SITE must be declared in the spec with `enrollment: request` (else exit 2).
    """
    from fedgen.enroll.kit import make_kit

    made, target, notes = make_kit(spec=spec, site=site, repo=repo, state=state, out=out)
    for note in notes:
        _err(f"note: {note}")
    click.echo(str(target))
    _err(f"root CA from {made.root.source}")
    _err(f"wrote {', '.join(sorted(made.files))} to {target}/ for {site}")
    _err(f"root CA fingerprint {made.root.fingerprint}: tell {site} over a second channel (phone, signed mail)")
    _err(
        f"over that channel {site} sends you its key's fingerprint (README step 3): approve its request only with "
        "that one (fedgen enroll approve REQUEST --key-fingerprint SHA256:...)"
    )


@enroll.command("approve")
@click.argument("request_zip", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--spec", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The federation spec.")
@click.option("--state", "state", metavar="LOCATION", help=_STATE_HELP)
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=".", show_default=True, help=_REPO_HELP)
@click.option(
    "--key-fingerprint",
    "expected_key",
    metavar="SHA256:AA:BB:...",
    help="The public-key fingerprint the site sent over a second channel; refuse (exit 2) a request with another key.",
)
@click.option(
    "--replace",
    "replace_key",
    is_flag=True,
    help="Sign a request whose key differs from the one signed for the site before (confirm its fingerprint with the site first).",
)
@handle_errors
def approve(request_zip: Path, spec: Path, state: str | None, repo: Path, expected_key: str | None, replace_key: bool) -> None:
    """Verify a site's request zip, sign it with the federation's CA, write the signed zip.

    \b
    Prints the request's public-key fingerprint (SHA256:AA:BB:...): the site reads its own
    out to you over a second channel (phone, video call); compare before committing, or pass
    it with --key-fingerprint so approve compares it before signing.
    \b
    Refused (exit 2, nothing written): another project, a site not declared with
    `enrollment: request`, another org, a bad name, a tampered or foreign CSR (digests,
    signature, CN), an RSA key under 2048 bits, any private key or unexpected file inside,
    a different request already committed for the site, a key other than --key-fingerprint,
    or a key other than the one already signed for the site (its state record, else the
    committed signed zip) without --replace: site names and orgs are public, so anyone can
    make a request that looks like the site's.
    Signs with NVFlare's own `nvflare cert approve` and the CA from the state (the root the
    server trusts); writes enrollment/<federation>/signed/<site>.signed.zip (and the request
    at enrollment/<federation>/requests/<site>.request.zip when it is not there yet);
    records the certificate in the state for `fedgen certs`. Approving an unchanged request
    again writes nothing ('unchanged'); a new root CA, or a new request with the same key,
    signs anew.
    """
    from fedgen.enroll.approve import approve as do_approve

    result = do_approve(spec=spec, request_zip=request_zip, repo=repo, state=state, replace_key=replace_key, expected_key=expected_key)
    signed = result.signed
    click.echo(result.signed_path)
    _err(f"request public key {result.key_fingerprint}: {result.site} must have sent you this fingerprint over a second channel")
    if result.replaced_key:
        _err(f"replaced the key signed for {result.site} before ({result.replaced_key})")
    if result.action == "unchanged":
        _err(f"unchanged: {result.site}'s request is approved already and {result.signed_path} is current")
    else:
        _err(
            f"{result.action} {result.site} (org {signed.org}) of {result.federation}: certificate serial {signed.serial}, "
            f"valid until {signed.not_after:%Y-%m-%d}"
        )
        if result.previous_serial and result.previous_serial != signed.serial:
            _err(f"note: the previous certificate {result.previous_serial} stays valid until it expires (NVFlare has no revocation)")
        _err(f"wrote {', '.join(result.written)}: commit and push ({shlex.join(['git', 'add', *result.written])})")
    _err(f"root CA fingerprint {signed.rootca_fingerprint}: confirm it with {result.site} out of band; they pass it to nvflare package --fingerprint")
