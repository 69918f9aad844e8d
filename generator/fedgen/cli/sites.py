"""What sites receive: `fedgen client-bundle`, and `fedgen enroll kit|approve` for sites that keep their own keys
(docs/enrollment.md)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from fedgen import api
from fedgen.cli import formatting, who_acts
from fedgen.cli.options import REPO_PATH, STATE_HELP, confirm, err, format_option, kube_options, spec_input, yes_option

_REPO_HELP = "The GitOps repository (rendered; where the default state lives)."


@click.command("client-bundle")
@click.argument("name")
@spec_input(positional=False)
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
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
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help=_REPO_HELP)
@kube_options
def client_bundle(
    name: str,
    spec: Path,
    state: str | None,
    out: Path | None,
    server_address: str | None,
    repo: Path,
    kubeconfig: Path | None,
    contexts: tuple[str, ...],
    timeout: float,
) -> None:
    """Write the bundle of site or admin NAME: its startup kit and how to run it.

    \b
    A tar.gz (keeps file modes: run.sh executable, the key 0600), written owner-only (0600),
    holding NAME/ with exactly that participant's kit plus README.md (docker, plain python,
    Kubernetes; for an admin: console and FLARE API), run.sh, doctor.sh (a connectivity doctor),
    k8s/ (sites), SHA256SUMS; and NAME.tar.gz.sha256 beside it. The same state gives the same bytes.

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

    \b
    Spec: --spec SPEC.
    Example:
      fedgen client-bundle client2 --spec federation.yaml --server-address from-cluster

    Exit codes: 0 written, 2 invalid input (unknown NAME, a site enrolling by request, a state behind the
    spec, an --out git would take), 3 external failure (storage, the cluster).
    """
    bundle = api.client_bundle(
        spec=spec, name=name, state=state, repo=repo, out=out, server_address=server_address, kubeconfig=kubeconfig, contexts=contexts, timeout=timeout
    )
    if bundle.address_from_cluster is not None:
        err(f"server address from the cluster: {bundle.address_from_cluster}")
    click.echo(str(bundle.path))
    err(f"wrote {bundle.path}: {bundle.kind} {bundle.name}, {bundle.size} bytes, owner-only (0600)")
    err(f"sha256 {bundle.sha256} (in {bundle.checksum_path}); send it to {bundle.name} over a second channel")


@click.group()
def enroll() -> None:
    """Sites that keep their own keys: enrollment by pull request.

    \b
    For sites declared with `enrollment: request` in the spec. The site makes its key and
    a request with NVFlare's `nvflare cert request`; the request zip (CSR and metadata, no
    key) reaches the repo by pull request; the operator approves it, which commits a signed
    zip (certificate and rootCA.pem, no key); the site builds its kit with `nvflare package`.
    Files live in enrollment/<federation>/requests/ and enrollment/<federation>/signed/.

    \b
    Example:
      fedgen enroll kit client3 --spec federation.yaml
      fedgen enroll approve enrollment/example_project/requests/client3.request.zip \\
          --spec federation.yaml --key-fingerprint SHA256:AA:BB:...
    """


@enroll.command("kit")
@click.argument("site")
@spec_input(positional=False)
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help=_REPO_HELP)
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), help="Folder to write. Default: ./<SITE>-enroll/.")
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

    \b
    Spec: --spec SPEC. Example: fedgen enroll kit client3 --spec federation.yaml

    Exit codes: 0 written, 2 invalid input (SITE not declared with `enrollment: request`, a bad --out),
    3 external failure.
    """
    made = api.enroll_kit(spec=spec, site=site, repo=repo, state=state, out=out)
    for note in made.notes:
        err(f"note: {note}")
    click.echo(str(made.folder))
    err(f"root CA from {made.kit.root.source}")
    err(f"wrote {', '.join(sorted(made.kit.files))} to {made.folder}/ for {site}")
    err(f"root CA fingerprint {made.kit.root.fingerprint}: tell {site} over a second channel (phone, signed mail)")
    err(
        f"over that channel {site} sends you its key's fingerprint (README step 3): approve its request only with "
        "that one (fedgen enroll approve REQUEST --key-fingerprint SHA256:...)"
    )


@enroll.command("approve")
@click.argument("request_zip", type=click.Path(path_type=Path, dir_okay=False))
@spec_input(positional=False)
@click.option("--state", "state", metavar="LOCATION", help=STATE_HELP)
@click.option("--repo", type=REPO_PATH, default=".", show_default=True, help=_REPO_HELP)
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
    help="Sign a request whose key differs from the one signed for the site before (confirm its fingerprint with the site "
    "first). Irreversible: asks first (--yes) and copies the state beside itself before replacing the record.",
)
@yes_option
@format_option
def approve(request_zip: Path, spec: Path, state: str | None, repo: Path, expected_key: str | None, replace_key: bool, yes: bool, fmt: str) -> None:
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
    signs anew. Ends with WHO MUST ACT: the site, when a new certificate was signed for it
    (--format json for CI).

    \b
    Spec: --spec SPEC.
    Example:
      fedgen enroll approve enrollment/example_project/requests/client3.request.zip \\
          --spec federation.yaml --key-fingerprint SHA256:AA:BB:...

    Exit codes: 0 signed (or unchanged), 2 refused (see above) or not confirmed, 3 external failure
    (nvflare, storage, lock held).
    """
    if replace_key:
        confirm(f"sign {request_zip} even if another key was signed for its site before", "the state's record of that key is replaced", yes=yes)
    approval = api.enroll_approve(spec=spec, request_zip=request_zip, repo=repo, state=state, replace_key=replace_key, expected_key=expected_key)
    result, signed = approval.approval, approval.approval.signed
    ctx = who_acts.Context(result.federation, spec, "")
    click.echo(who_acts.approve_json(approval, ctx) if fmt == "json" else result.signed_path, nl=fmt == "text")
    for line in formatting.backup_line(result.backup):
        err(line)
    err(f"request public key {result.key_fingerprint}: {result.site} must have sent you this fingerprint over a second channel")
    if result.replaced_key:
        err(f"replaced the key signed for {result.site} before ({result.replaced_key})")
    if result.action == "unchanged":
        err(f"unchanged: {result.site}'s request is approved already and {result.signed_path} is current")
    else:
        err(
            f"{result.action} {result.site} (org {signed.org}) of {result.federation}: certificate serial {signed.serial}, "
            f"valid until {signed.not_after:%Y-%m-%d}"
        )
        err(f"wrote {', '.join(result.written)}: commit and push ({shlex.join(['git', 'add', *result.written])})")
    err(f"root CA fingerprint {signed.rootca_fingerprint}: confirm it with {result.site} out of band; they pass it to nvflare package --fingerprint")
    if fmt == "text":
        for line in who_acts.who_must_act_lines(approval.who_must_act, ctx):
            err(line)
