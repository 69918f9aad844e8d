"""Helpers for the validate tests: renders made once per test process, copied per test; hand edits of the
rendered YAML; ledger re-stamping (so a hand-built tree looks rendered); keys and certificates made now."""

from __future__ import annotations

import atexit
import copy
import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from tests.support import OTHER_SPEC, REPO_ROOT, dump_yaml

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


def _render(spec: Path, repo: Path) -> None:
    from fedgen.api import render

    render(spec=spec, repo=repo)


@lru_cache(maxsize=None)
def pristine_cert(number: int = 1) -> bytes:
    """Sealing certificates (RSA-4096, made now) for the specs the tests render; one per number."""
    from fedgen.seal import generate_development_keypair

    return generate_development_keypair(common_name=f"sealing-{number}")[1]


@lru_cache(maxsize=None)
def pristine(kind: str) -> Path:
    """A rendered repo, made once per process: 'example' (examples/federation.yaml, no source ranges),
    'ranged' (tests.support.OTHER_SPEC, with source ranges and a sealing certificate made now), and
    'bypass' (the same spec with server.exposure: loadbalancer)."""
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
        spec["spec"]["clusters"].append(
            {"name": SITE_CLUSTER, "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}}
        )
        spec["spec"]["sites"][0]["cluster"] = SITE_CLUSTER
        spec["spec"]["server"]["externalAddress"] = "203.0.113.10"
        dump_yaml(spec, repo / SPEC)
        _render(repo / SPEC, repo)
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
