"""Helpers for the validate tests: renders made once per test process, copied per test; hand edits of the
rendered YAML; ledger re-stamping (so a hand-built tree looks rendered); keys and certificates made now."""

from __future__ import annotations

import atexit
import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from tests.support import OTHER_SPEC, REPO_ROOT, dump_yaml

# The rules a hand edit of a rendered file or folder fires: it differs from what the spec renders, whether
# the ledger was re-stamped or not.
HAND_EDIT = frozenset({"FG120", "FG121", "FG122", "FG123", "FG124"})

_WORK = Path(tempfile.mkdtemp(prefix="fedgen-validate-tests-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)

# The ranged spec (tests.support.OTHER_SPEC): names of what it renders.
TENANT = "fl-genomics"
SERVER = "flserver"
CLUSTER = "gke-eu"
WORKLOAD = f"nvflare-{SERVER}"
FL_PORT, ADMIN_PORT = 9102, 9103
SERVER_DIR = f"tenants/{TENANT}/{WORKLOAD}"
BASE_DIR = f"tenants/{TENANT}/base"
CLUSTER_DIR = f"clusters/{CLUSTER}"
INGRESS_DIR = f"{CLUSTER_DIR}/istio-ingress/{TENANT}"
BOOTSTRAP_DIR = f"{CLUSTER_DIR}/bootstrap"
SPEC = "spec/federation.yaml"
SITE_CLUSTER = "gke-hosp-a"
SITE_DIR = f"clusters/{SITE_CLUSTER}/sites/site-a"
# The 'enrolled' render: site-c keeps its own key (enrollment: request) and is enrolled with the real tools.
FEDERATION = "genomics"
ENROLL_SITE, ENROLL_ORG = "site-c", "hospital_c"
ENROLL_REQUEST = f"enrollment/{FEDERATION}/requests/{ENROLL_SITE}.request.zip"
ENROLL_SIGNED = f"enrollment/{FEDERATION}/signed/{ENROLL_SITE}.signed.zip"
NVFLARE = str(Path(sys.executable).parent / "nvflare")


def _render(spec: Path, repo: Path) -> None:
    from fedgen.api import render

    render(spec=spec, repo=repo)


@lru_cache(maxsize=None)
def pristine_cert(number: int = 1) -> bytes:
    """Sealing certificates (RSA-4096, made now) for the specs the tests render; one per number."""
    from fedgen.seal.certificate import generate_development_keypair

    return generate_development_keypair(common_name=f"sealing-{number}")[1]


@lru_cache(maxsize=None)
def pristine(kind: str) -> Path:
    """A rendered repo, made once per process: 'example' (examples/federation.yaml, no source ranges),
    'ranged' (tests.support.OTHER_SPEC, with source ranges and a sealing certificate made now), 'bypass'
    (the same spec with server.exposure: loadbalancer), 'sites', 'argocd', and 'enrolled' (the ranged spec
    with site-c enrolling by request, enrolled with the real nvflare tools: request and signed zip committed)."""
    repo = _WORK / kind
    if kind == "example":
        repo.mkdir()
        shutil.copytree(REPO_ROOT / "examples", repo / "examples")
        _render(repo / "examples" / "federation.yaml", repo)
    elif kind == "ranged":
        (repo / "spec").mkdir(parents=True)
        (repo / "spec" / "sealing.pem").write_bytes(pristine_cert())
        dump_yaml(copy.deepcopy(OTHER_SPEC), repo / SPEC)
        _render(repo / SPEC, repo)
    elif kind == "bypass":
        (repo / "spec").mkdir(parents=True)
        (repo / "spec" / "sealing.pem").write_bytes(pristine_cert())
        spec = copy.deepcopy(OTHER_SPEC)
        spec["spec"]["server"]["exposure"] = "loadbalancer"
        dump_yaml(spec, repo / SPEC)
        _render(repo / SPEC, repo)
    elif kind == "sites":
        (repo / "spec").mkdir(parents=True)
        (repo / "spec" / "sealing.pem").write_bytes(pristine_cert())
        (repo / "spec" / "hosp-a.pem").write_bytes(pristine_cert(2))
        spec = copy.deepcopy(OTHER_SPEC)
        spec["spec"]["clusters"].append({"name": SITE_CLUSTER, "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}})
        spec["spec"]["sites"][0]["cluster"] = SITE_CLUSTER
        spec["spec"]["server"]["externalAddress"] = "203.0.113.10"
        dump_yaml(spec, repo / SPEC)
        _render(repo / SPEC, repo)
    elif kind == "enrolled":
        _render_enrolled(repo)
        _enroll(repo)
    elif kind == "argocd":
        (repo / "spec").mkdir(parents=True)
        (repo / "spec" / "sealing.pem").write_bytes(pristine_cert())
        spec = copy.deepcopy(OTHER_SPEC)
        spec["spec"]["gitops"]["engine"] = "argocd"
        dump_yaml(spec, repo / SPEC)
        _render(repo / SPEC, repo)
    else:
        raise ValueError(kind)
    return repo


def _enrolled_spec() -> dict[str, Any]:
    spec = copy.deepcopy(OTHER_SPEC)
    spec["spec"]["sites"].append({"name": ENROLL_SITE, "org": ENROLL_ORG, "enrollment": "request"})
    return spec


def _render_enrolled(repo: Path) -> None:
    (repo / "spec").mkdir(parents=True)
    (repo / "spec" / "sealing.pem").write_bytes(pristine_cert())
    dump_yaml(_enrolled_spec(), repo / SPEC)
    _render(repo / SPEC, repo)


@contextmanager
def _home(folder: Path) -> Iterator[None]:
    """HOME for the nvflare tools, which write audit files under ~/.nvflare."""
    folder.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def _site_requests(repo: Path, projects: list[str]) -> list[Path]:
    """As the site: `fedgen enroll kit`, then `nvflare cert request` once per project named (each with a new
    key, in parallel; the kit's participant.yaml with that project name); the request folders (each holds
    <site>.request.zip and the key that never leaves it)."""
    from fedgen.enroll.kit import make_kit

    site = _WORK / "site"
    kit = site / "kit"
    make_kit(spec=repo / SPEC, site=ENROLL_SITE, repo=repo, out=kit)
    participant = (kit / "participant.yaml").read_text()
    assert f"name: {FEDERATION}\n" in participant
    procs, folders = [], []
    for i, project in enumerate(projects):
        folder = site / f"request-{i}"
        folder.mkdir(parents=True)
        (folder / "participant.yaml").write_text(participant.replace(f"name: {FEDERATION}\n", f"name: {project}\n", 1))
        env = {**os.environ, "HOME": str(site / "home")}
        procs.append(
            subprocess.Popen(
                [NVFLARE, "cert", "request", "-p", "participant.yaml"], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
        folders.append(folder / ENROLL_SITE)
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
    return folders


def _approve(repo: Path, request: Path) -> None:
    from fedgen.enroll.approve import approve

    with _home(_WORK / "operator-home"):
        approve(spec=repo / SPEC, request_zip=request, repo=repo)


_REQUESTS: list[Path] = []  # site-c's request folders, made for the 'enrolled' render


def _enroll(repo: Path) -> None:
    """Enroll site-c as docs/enrollment.md says: requests made with the kit of this render (the first is
    committed, then approved: the signed zip is committed too; the others are kept for the plants)."""
    _REQUESTS[:] = _site_requests(repo, [FEDERATION, FEDERATION, "proteomics"])
    (repo / ENROLL_REQUEST).parent.mkdir(parents=True)
    shutil.copy(_REQUESTS[0] / f"{ENROLL_SITE}.request.zip", repo / ENROLL_REQUEST)
    _approve(repo, repo / ENROLL_REQUEST)
    assert (repo / ENROLL_SIGNED).is_file()


@dataclass(frozen=True)
class Enrollment:
    """Real enrollment files of site-c (all made with nvflare and fedgen enroll approve), for plants."""

    request: bytes  # committed in the 'enrolled' repo
    signed: bytes  # the approval committed there
    key: bytes  # site-c's private key (it never leaves the site's folder; the key plants put it in a zip)
    other_request: bytes  # a second request of site-c, with another key
    other_project_request: bytes  # a request of site-c for another project (proteomics)
    other_root_signed: bytes  # the committed request approved by another federation's CA


@lru_cache(maxsize=None)
def enrollment() -> Enrollment:
    repo = pristine("enrolled")
    first, second, other_project = _REQUESTS
    other = _WORK / "enrolled-other-ca"  # the same spec rendered anew: a new state, so a new root CA
    _render_enrolled(other)
    _approve(other, repo / ENROLL_REQUEST)
    return Enrollment(
        request=(repo / ENROLL_REQUEST).read_bytes(),
        signed=(repo / ENROLL_SIGNED).read_bytes(),
        key=(first / f"{ENROLL_SITE}.key").read_bytes(),
        other_request=(second / f"{ENROLL_SITE}.request.zip").read_bytes(),
        other_project_request=(other_project / f"{ENROLL_SITE}.request.zip").read_bytes(),
        other_root_signed=(other / ENROLL_SIGNED).read_bytes(),
    )


def _no_state(folder: str, names: list[str]) -> list[str]:
    return ["state"] if folder.endswith(".fedgen") else []


def fresh(kind: str, into: Path) -> Path:
    repo = into / "repo"
    shutil.copytree(pristine(kind), repo, ignore=_no_state)
    return repo


# ------------------------------------------------------------------------------------------------- edits


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    return yaml


def load(repo: Path, path: str) -> list[Any]:
    return [d for d in _yaml().load_all((repo / path).read_text()) if d is not None]


def save(repo: Path, path: str, docs: list[Any]) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as fh:
        _yaml().dump_all(docs, fh)


def edit(repo: Path, path: str, change: Callable[[list[Any]], None]) -> None:
    docs = load(repo, path)
    change(docs)
    save(repo, path, docs)


def doc(docs: list[Any], kind: str, name: str | None = None) -> dict[str, Any]:
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise KeyError(f"{kind}/{name}")


def edit_obj(repo: Path, path: str, kind: str, change: Callable[[dict[str, Any]], None], name: str | None = None) -> None:
    edit(repo, path, lambda docs: change(doc(docs, kind, name)))


def add_resource(repo: Path, folder: str, entry: str) -> None:
    def change(docs: list[Any]) -> None:
        docs[0]["resources"] = sorted({*docs[0].get("resources", []), entry})

    edit(repo, f"{folder}/kustomization.yaml", change)


def remove_resource(repo: Path, folder: str, entry: str) -> None:
    def change(docs: list[Any]) -> None:
        docs[0]["resources"] = [r for r in docs[0]["resources"] if r != entry]

    edit(repo, f"{folder}/kustomization.yaml", change)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def restamp(repo: Path) -> None:
    """Record every owned file's current digest (dropping deleted ones), as a render would."""
    for ledger_path in sorted((repo / ".fedgen" / "owned").glob("*.json")):
        try:
            ledger = json.loads(ledger_path.read_text())
        except ValueError:
            continue
        files = {}
        for path in sorted(ledger["files"]):
            if (repo / path).is_file():
                files[path] = hashlib.sha256((repo / path).read_bytes()).hexdigest()
        ledger["files"] = files
        ledger_path.write_text(json.dumps(ledger, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------- keys and certs


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: tuple[str, rsa.RSAPrivateKey] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    if not_before is None:
        not_before = min(now, not_after or now) - dt.timedelta(days=10)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def replace_kit_certs(repo: Path, *, root: x509.Certificate | None = None, server: x509.Certificate | None = None) -> None:
    def change(d: dict[str, Any]) -> None:
        if root is not None:
            d["data"]["rootCA.pem"] = cert_pem(root)
        if server is not None:
            d["data"]["server.crt"] = cert_pem(server)

    edit_obj(repo, f"{SERVER_DIR}/configmaps.yaml", "ConfigMap", change, name=f"{WORKLOAD}-startup")
