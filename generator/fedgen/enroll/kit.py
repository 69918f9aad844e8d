"""`fedgen enroll kit`: what a site needs to make its own key and request. No key, no state beyond the root CA.

The kit (a folder, default ./<site>-enroll/):
    participant.yaml        for `nvflare cert request -p participant.yaml` (project, the site, its org, and
                            connect_to.host = the server's default host, so the kit dials what bundles dial)
    project_profile.yaml    the project profile `fedgen enroll approve` signs with (name, scheme grpc,
                            connection_security mtls, server host = the server's name = its certificate CN)
    ROOTCA_FINGERPRINT      SHA256:AA:BB:... of the federation's rootCA.pem, to confirm out of band
    README.md               the exact commands: request, key fingerprint (second channel), pull request,
                            package, run
"""

from __future__ import annotations

import io
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgen.enroll.files import write_atomic
from fedgen.enroll.layout import REQUEST_SUFFIX, request_path, signed_path
from fedgen.enroll.rootca import RootCA
from fedgen.spec.model import Federation, Site

PARTICIPANT = "participant.yaml"
PROFILE = "project_profile.yaml"
FINGERPRINT = "ROOTCA_FINGERPRINT"
README = "README.md"
SCHEME = "grpc"  # what fedgen's provisioning uses (StaticFileBuilder scheme)
CONNECTION_SECURITY = "mtls"  # what the rendered fed_server.json says
PROVISION_VERSION = "00"  # nvflare package puts the kit under <workspace>/<project>/prod_00/<site>
CLIENT_MODULE = "nvflare.private.fed.app.client.client_train"
# Prints SHA256:AA:BB:... of the public key in a CSR (argv[1]), as `fedgen enroll approve` prints it. Python and
# cryptography come with nvflare, so the site needs nothing else; it runs on the site's own CSR, not on the zip
# that travels, so it tells what the site made.
KEY_FINGERPRINT_PY = (
    "import hashlib, sys; from cryptography import x509; from cryptography.hazmat.primitives import serialization as s; "
    "d = hashlib.sha256(x509.load_pem_x509_csr(open(sys.argv[1], 'rb').read()).public_key()"
    ".public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)).hexdigest().upper(); "
    "print('SHA256:' + ':'.join(d[i:i + 2] for i in range(0, 64, 2)))"
)


@dataclass(frozen=True)
class EnrollKit:
    site: Site
    files: Mapping[str, bytes]  # file name -> bytes
    root: RootCA


def _yaml(header: str, data: Mapping[str, Any]) -> bytes:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    out.write("".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()))
    yaml.dump(dict(data), out)
    return out.getvalue().encode()


def participant_definition(fed: Federation, site: Site) -> dict[str, Any]:
    """`nvflare cert request`'s participant YAML for one client of this federation."""
    return {
        "name": fed.name,
        "participants": [
            {"name": site.name, "type": "client", "org": site.org, "connect_to": {"host": fed.server.default_host}},
        ],
    }


def project_profile(fed: Federation) -> dict[str, Any]:
    """The project profile `nvflare cert approve --profile` takes. server.host is the server's participant
    name: `nvflare package` makes it the identity the client checks against the server certificate's CN."""
    return {
        "name": fed.name,
        "scheme": SCHEME,
        "connection_security": CONNECTION_SECURITY,
        "server": {"host": fed.server.name, "fed_learn_port": fed.server.fl_port, "admin_port": fed.server.admin_port},
    }


def client_profile(fed: Federation) -> tuple[str, int]:
    """What of project_profile reaches an enrolled site's kit through its signed zip (`nvflare package`, checked
    against NVFlare 2.9): the server's name (fed_client.json's identity) and fl port (its target's port). The admin
    port is signed too, but no file of a client's kit holds it; scheme and connection security are fixed here.
    The host the kit dials is the site's own (its site.yaml's connect_to.host), not in the profile."""
    return fed.server.name, fed.server.fl_port


def participant_yaml(fed: Federation, site: Site, spec_name: str) -> bytes:
    header = (
        f"Participant definition for `nvflare cert request -p {PARTICIPANT}` (NVFlare {fed.nvflare_version}):\n"
        f"site {site.name} of federation {fed.name}, made by fedgen enroll kit from {spec_name}.\n"
        "Change nothing but connect_to.host (the name or address your site dials the server by): the\n"
        "operator's approval refuses another project, name or org."
    )
    return _yaml(header, participant_definition(fed, site))


def profile_yaml(fed: Federation, spec_name: str) -> bytes:
    header = (
        f"Project profile of federation {fed.name} (NVFlare distributed provisioning), made by fedgen from {spec_name}.\n"
        "fedgen enroll approve signs with exactly these values (nvflare cert approve --profile); sites need not pass it."
    )
    return _yaml(header, project_profile(fed))


def key_fingerprint_command(csr: str) -> str:
    """The shell command that prints the fingerprint of the public key in the CSR file `csr`."""
    return shlex.join(["python3", "-c", KEY_FINGERPRINT_PY, csr])


def readme(fed: Federation, site: Site, root: RootCA, spec_name: str, out_name: str) -> bytes:
    """The site's instructions. Every value in a command is shell-quoted (shlex), so no spec or path value can
    turn into shell syntax when the site pastes a line."""
    req, signed = request_path(fed.name, site.name), signed_path(fed.name, site.name)
    s = fed.server
    kit = f"workspace/{fed.name}/prod_{PROVISION_VERSION}/{site.name}"
    q = shlex.quote
    address = s.external_address
    mapping = f"`{s.default_host}` must resolve to the server's address" + (
        f" ({address}): e.g. add `{address} {s.default_host}` to /etc/hosts (or `--add-host {q(f'{s.default_host}:{address}')}` for docker)."
        if address
        else ": ask the operator for the external address and map it (e.g. `<address> " + s.default_host + "` in /etc/hosts)."
    )
    branch = f"enroll-{site.name}"
    request_zip = f"{site.name}/{site.name}{REQUEST_SUFFIX}"
    text = f"""# Enrolling site {site.name} in federation {fed.name}

Made by `fedgen enroll kit {site.name}` from {spec_name}. Your private key is made here, by you, and never
leaves this machine: what you send (a request zip) and what you get back (a signed zip) hold no key and
are committed to the federation's GitOps repository ({fed.gitops.repo}, branch {fed.gitops.revision}).

Needs python3 with `pip install {q(f"nvflare=={fed.nvflare_version}")}` (the federation runs NVFlare {fed.nvflare_version}).

## 1. Check the root CA fingerprint out of band

    {root.fingerprint}

(also in `{FINGERPRINT}`). Confirm it with the federation operator over a second channel (phone, video
call, signed mail): it is the only thing that proves the signed zip you will get comes from them.

## 2. Make your key and request, in the kit folder

    cd {q(out_name if not out_name.startswith("-") else f"./{out_name}")}
    nvflare cert request -p {PARTICIPANT}

This writes `./{site.name}/`: `{site.name}.key` (your private key, 0600: never send or commit it),
`{site.name}.csr`, `request.json`, `site.yaml` and `{site.name}{REQUEST_SUFFIX}` (CSR and metadata only).
Keep the `./{site.name}/` folder: `nvflare package` needs it later.

## 3. Send your key's fingerprint to the operator over a second channel

Site names and orgs are public: anyone can make a request that looks like yours, and a pull request can
replace your request zip with theirs. The fingerprint of your public key tells the operator which request is
yours. In the kit folder:

    {key_fingerprint_command(f"{site.name}/{site.name}.csr")}

Read the `SHA256:...` line it prints to the federation operator over a second channel (phone, video call,
signed mail; not the pull request). The operator approves only a request whose key has exactly this
fingerprint (`fedgen enroll approve` prints it).

## 4. Open a pull request with the request zip

In a clone of {fed.gitops.repo}:

    {shlex.join(["git", "checkout", "-b", branch, f"origin/{fed.gitops.revision}"])}
    {shlex.join(["mkdir", "-p", req.rsplit("/", 1)[0]])}
    cp <path to>/{q(f"{out_name}/{request_zip}")} {q(req)}
    {shlex.join(["git", "add", req])}
    {shlex.join(["git", "commit", "-m", f"enroll {site.name} in {fed.name}"])}
    {shlex.join(["git", "push", "-u", "origin", branch])}      # then open the pull request

The PR check (`fedgen validate`) verifies the request's shape. After the merge the operator runs, with
the fingerprint you sent in step 3,

    {shlex.join(["fedgen", "enroll", "approve", req, "--spec", spec_name, "--key-fingerprint", "SHA256:..."])}

commits `{signed}` and tells you the root CA fingerprint: it must be the one in step 1.

## 5. Package your startup kit

After pulling the operator's commit, in the kit folder:

    nvflare package <clone>/{q(signed)} \\
        {shlex.join(["--request-dir", site.name, "-w", "workspace", "--fingerprint", root.fingerprint])}

`nvflare package` refuses a signed zip whose root CA has another fingerprint. It writes your kit to
`{kit}/` (startup/client.key is copied from `./{site.name}/`). It warns that connect_to.host
'{s.default_host}' "may be invalid": expected, the server's certificate is for `{s.name}` and that is what
the kit checks.

## 6. Run the client

The kit dials `{s.default_host}:{s.fl_port}` and checks that the server's certificate is for `{s.name}`;
{mapping}

    python3 -u -m {CLIENT_MODULE} -m "$PWD"/{q(kit)} -s fed_client.json \\
        {shlex.join(["--set", "secure_train=true", f"uid={site.name}", "config_folder=config", f"org={site.org}"])}

(from the kit folder; the workspace path must be absolute: the client changes into it before reading
its startup files). Or `{kit}/startup/start.sh`, which restarts the client when it dies.

## Later

- The operator renewed the root CA, or changed the server's name or fl port (your signed zip carries
  them): they re-approve your committed request (same key); pull, then run step 5 again with `--force` (and
  the new fingerprint after a new root CA).
- The operator changed the host name the server is dialled by (`{s.default_host}` today): set
  `connect_to.host` to the new name in `{site.name}/site.yaml` (and in `{PARTICIPANT}`), then run step 5 again
  with `--force`. A new server address: map the name to it where you map it (step 6).
- You lost your key or want a new one: run step 2 again with `--force`, send the new key's fingerprint
  (step 3) and open a pull request replacing `{req}`. The operator's approval refuses a new key for your
  site until they confirm it with you (`fedgen enroll approve --replace`).
"""
    return text.encode()


def build_kit(fed: Federation, site: Site, root: RootCA, *, spec_name: str, out_name: str) -> EnrollKit:
    files = {
        PARTICIPANT: participant_yaml(fed, site, spec_name),
        PROFILE: profile_yaml(fed, spec_name),
        FINGERPRINT: f"{root.fingerprint}\n".encode(),
        README: readme(fed, site, root, spec_name, out_name),
    }
    return EnrollKit(site, files, root)


def write_kit(kit: EnrollKit, out: Path) -> list[Path]:
    """Write the kit's files into `out` (created 0755 when missing); other files there are left alone."""
    if out.is_symlink():
        from fedgen.errors import InputError

        raise InputError(f"{out}: is a symbolic link; refusing to write through it")
    if not out.exists():
        out.mkdir(parents=True)
        os.chmod(out, 0o755)
    written = []
    for name, data in sorted(kit.files.items()):
        path = out / name
        write_atomic(path, data, mode=0o644)
        written.append(path)
    return written


def make_kit(*, spec: Path, site: str, repo: Path, state: str | None = None, out: Path | None = None) -> tuple[EnrollKit, Path, list[str]]:
    """Load the spec, find the root CA (state, else the rendered ConfigMap), write the kit; (kit, out, notes)."""
    from fedgen.enroll.policy import request_site
    from fedgen.enroll.rootca import locate
    from fedgen.errors import InputError
    from fedgen.spec import load_federation
    from fedgen.spec.yamlsafe import forbidden_character

    repo = repo.resolve()
    if not repo.is_dir():
        raise InputError(f"{repo}: --repo is not a folder")
    fed = load_federation(spec)
    the_site = request_site(fed, site, what="fedgen enroll kit")
    root, notes = locate(fed, repo, state)
    target = out if out is not None else Path(f"{site}-enroll")
    bad = forbidden_character(target.name)
    if bad is not None:  # the name goes into the README's commands, one line each
        raise InputError(f"{target}: --out holds the control or invisible character U+{ord(bad):04X}; choose another folder name")
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    try:
        spec_name = Path(os.path.relpath(spec.resolve(), repo)).as_posix()
    except ValueError:
        spec_name = spec.name
    if spec_name.startswith(".."):
        spec_name = spec.name
    kit = build_kit(fed, the_site, root, spec_name=spec_name, out_name=target.name)
    write_kit(kit, target)
    return kit, target, notes
