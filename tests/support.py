"""Helpers shared by the tests: a spec unlike the example, tree snapshots, external tools."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from fedgen.errors import ExternalError
from fedgen.executables import find_tool

if TYPE_CHECKING:
    from click.testing import Result

    from fedgen.spec.model import Federation

REPO_ROOT = Path(__file__).resolve().parents[1]

# Deliberately unlike examples/federation.yaml: other project, server, tenant, cluster, ports, names, a
# digest-pinned image, and a standalone cluster (fedgen renders the tenant baseline itself; the example
# runs on the reference architecture).
OTHER_IMAGE = "europe-west4-docker.pkg.dev/gen-proj/fl/nvflare@sha256:" + "0123456789abcdef" * 4
OTHER_SPEC: dict[str, Any] = {
    "apiVersion": "fedgen/v1",
    "kind": "Federation",
    "metadata": {"name": "genomics"},
    "spec": {
        "nvflare": {"version": "2.9.0", "image": OTHER_IMAGE},
        "gitops": {"engine": "config-sync", "repo": "https://git.example.org/fl/genomics-gitops.git", "revision": "release"},
        "sealing": {"certificate": "sealing.pem", "scope": "strict"},
        "clusters": [{"name": "gke-eu", "projectId": "gen-proj", "region": "europe-west4", "projectNumber": "123456789012"}],
        "platform": {"kind": "standalone", "resourceNamePrefix": "gx", "platformName": "prod"},
        "workspace": {"bucket": "flws"},
        "server": {
            "name": "flserver",
            "org": "genomics_lab",
            "cluster": "gke-eu",
            "tenant": "fl-genomics",
            "ports": {"fl": 9102, "admin": 9103},
            "hostNames": ["fl.genomics.example.org", "flserver"],
            "exposure": "gateway",
            "loadBalancerSourceRanges": ["203.0.113.0/24", "198.51.100.7/32"],
        },
        "sites": [{"name": "site-a", "org": "hospital_a"}, {"name": "site-b", "org": "hospital_b"}],
        "admins": [{"name": "lead@genomics.example.org", "org": "genomics_lab", "role": "project_admin"}],
    },
}

# The small federation of the provisioning tests (tests/provision/test_provision*.py).
ADMIN = "admin@example.com"
HOSTS = ("fl.example.com", "fl-alt.example.com")


def make_federation(
    *,
    sites: Sequence[tuple[str, str]] = (("site1", "org_b"), ("site2", "org_c")),
    admins: Sequence[tuple[str, str, str]] = ((ADMIN, "org_a", "project_admin"),),
    host_names: Sequence[str] = HOSTS,
    server_name: str = "server1",
    name: str = "proj",
) -> Federation:
    """A federation of (name, org) sites and (name, org, role) admins, loaded from a spec by the real loader.
    Tests that need what the loader refuses (names NVFlare rejects, no admin) replace fields of its result."""
    from fedgen.spec import load_federation

    spec = {
        "apiVersion": "fedgen/v1",
        "kind": "Federation",
        "metadata": {"name": name},
        "spec": {
            "nvflare": {"version": "2.9.0", "image": "example.com/nvflare:2.9.0"},
            "gitops": {"engine": "config-sync", "repo": "https://example.com/repo.git"},
            "clusters": [{"name": "c1", "projectId": "proj-one", "projectNumber": "123456789012", "region": "europe-west1"}],
            "workspace": {"bucket": "ws", "bucketName": "ws-bucket"},
            "server": {"name": server_name, "org": "org_a", "cluster": "c1", "tenant": "t1", "hostNames": list(host_names)},
            "sites": [{"name": n, "org": o} for n, o in sites],
            "admins": [{"name": n, "org": o, "role": r} for n, o, r in admins],
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "federation.yaml"
        dump_yaml(spec, path)
        return load_federation(path)


# The site that enrolls by request in the enrollment tests (with_request_site adds it to OTHER_SPEC).
REQUEST_SITE, REQUEST_ORG = "site-c", "hospital_c"


def with_request_site(d: dict[str, Any]) -> None:
    d["spec"]["sites"].append({"name": REQUEST_SITE, "org": REQUEST_ORG, "enrollment": "request"})


def craft_request(
    project: str = OTHER_SPEC["metadata"]["name"],
    name: str = REQUEST_SITE,
    org: str = REQUEST_ORG,
    *,
    key: rsa.RSAPrivateKey | None = None,
    cn: str | None = None,
) -> dict[str, bytes]:
    """Members of an enrollment request in NVFlare 2.9's format, made here (consistent digests), for the negative cases."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn or name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, "client"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    site_yaml = f"name: {project}\nparticipants:\n- name: {name}\n  type: client\n  org: {org}\n".encode()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    meta = {
        "artifact_type": "nvflare.cert.request",
        "schema_version": "1",
        "request_id": os.urandom(16).hex(),
        "created_at": "2026-01-01T00:00:00Z",
        "project": project,
        "name": name,
        "org": org,
        "kind": "site",
        "cert_type": "client",
        "cert_role": None,
        "csr_sha256": hashlib.sha256(csr).hexdigest(),
        "public_key_sha256": hashlib.sha256(spki).hexdigest(),
        "site_yaml_sha256": hashlib.sha256(site_yaml).hexdigest(),
    }
    return {"request.json": json.dumps(meta, indent=2).encode(), "site.yaml": site_yaml, f"{name}.csr": csr}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def dump_yaml(data: Any, path: Path) -> None:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with path.open("w") as fh:
        yaml.dump(data, fh)


def tree_snapshot(root: Path, *, exclude: tuple[str, ...] = (".fedgen/state",)) -> dict[str, bytes]:
    """Every regular file under root (relative posix path -> bytes), the state excluded."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(rel == e or rel.startswith(e + "/") for e in exclude):
            out[rel] = path.read_bytes()
    return out


def tool(name: str) -> str:
    """A required external tool: missing is a test failure, never a skip."""
    try:
        return str(find_tool(name))
    except ExternalError as exc:
        pytest.fail(str(exc), pytrace=False)


def kustomize_build(folder: Path) -> str:
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", "--load-restrictor=LoadRestrictionsNone", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port nothing can listen on while the block runs: bound here and never listened on, so a
    connection to it is refused (a merely "free" port could be taken by another process meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def free_port_pair() -> tuple[int, int]:
    """Two free, consecutive-ish loopback ports for a server's fl and admin ports."""
    socks = []
    try:
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for s in socks:
            s.close()


def fedgen_cli(*args: str) -> Result:
    """Run a fedgen command in this process (click's runner): exit code and output, nothing raised."""
    from click.testing import CliRunner

    from fedgen.cli import main

    return CliRunner().invoke(main, list(args))


def render_spec(spec: Path, *args: str) -> Result:
    """`fedgen render SPEC` into the repository the spec's folder sits in (<repo>/spec/federation.yaml)."""
    return fedgen_cli("render", str(spec), "--repo", str(spec.parent.parent), *args)
