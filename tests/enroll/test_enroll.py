"""Enrollment by request (issue 8) with the real NVFlare 2.9 tools: `fedgen enroll kit`, `nvflare cert request`
run as the site would, `fedgen enroll approve`, `nvflare package` with the fingerprint.

HOME is a temporary folder for every nvflare run (the tools write audit files under ~/.nvflare): the site's
under its own folder, the operator's beside the repo. tempfile's folder is redirected so the CA folder that
approve materializes can be checked to be gone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fedgen.certs.lifecycle import certificate_report
from fedgen.enroll import (
    PrivateKeyFound,
    SignedInfo,
    chains_to,
    check_pair,
    check_request,
    classify,
    fingerprint,
    inspect_request_zip,
    inspect_signed_zip,
    key_fingerprint,
    request_path,
    server_root_pem,
    signed_path,
)
from fedgen.enroll.kit import key_fingerprint_command
from fedgen.errors import InputError
from fedgen.spec import load_federation
from fedgen.state import StateDocument
from tests.support import REQUEST_ORG, REQUEST_SITE, craft_request, fedgen_cli, tree_snapshot, with_request_site, zip_bytes

SpecWriter = Callable[..., Path]
SITE, ORG, PROJECT = REQUEST_SITE, REQUEST_ORG, "genomics"
NVFLARE = str(Path(sys.executable).parent / "nvflare")
REQ_REL, SIGNED_REL = request_path(PROJECT, SITE), signed_path(PROJECT, SITE)


@pytest.fixture
def world(write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A rendered repo whose spec has site-c (enrollment: request); the site's and operator's folders."""
    spec = write_spec(with_request_site)
    repo = spec.parent.parent
    result = fedgen_cli("render", str(spec), "--repo", str(repo))
    assert result.exit_code == 0, result.output
    operator_home, scratch, site = tmp_path / "operator-home", tmp_path / "scratch", tmp_path / "site"
    for folder in (operator_home, scratch, site / "home"):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(operator_home))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return {"spec": spec, "repo": repo, "site": site, "scratch": scratch}


def _nvflare(args: list[str], cwd: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HOME": str(home)}
    return subprocess.Popen([NVFLARE, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc: subprocess.Popen[str]) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out


def _site_request(w: dict[str, Path]) -> Path:
    """As the site: its kit, then `nvflare cert request` in its own folder; returns the request folder."""
    kit = w["site"] / f"{SITE}-enroll"
    result = fedgen_cli("enroll", "kit", SITE, "--spec", str(w["spec"]), "--repo", str(w["repo"]), "--out", str(kit))
    assert result.exit_code == 0, result.output
    _wait(_nvflare(["cert", "request", "-p", "participant.yaml"], kit, w["site"] / "home"))
    return kit / SITE


def _approve(w: dict[str, Path], request: Path, *extra: str) -> Result:
    return fedgen_cli("enroll", "approve", str(request), "--spec", str(w["spec"]), "--repo", str(w["repo"]), *extra)


def _repo_state(repo: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the repo, the state included, with its mtime: what 'nothing written' compares."""
    return {rel: (data, (repo / rel).stat().st_mtime_ns) for rel, data in tree_snapshot(repo, exclude=()).items()}


def _contents(path: Path) -> Iterator[bytes]:
    """A file's bytes, and for zips each member; for the state, the signed zips it records too."""
    data = path.read_bytes()
    yield data
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                yield zf.read(name)
    if path.name == "state.json":
        for record in json.loads(data).get("enrolled", {}).values():
            with zipfile.ZipFile(io.BytesIO(base64.b64decode(record["signed_zip"]))) as zf:
                for name in zf.namelist():
                    yield zf.read(name)


def _certs(w: dict[str, Path]) -> tuple[int, dict[str, dict[str, Any]]]:
    result = fedgen_cli("certs", str(w["spec"]), "--repo", str(w["repo"]), "--format", "json")
    return result.exit_code, {r["name"]: r for r in json.loads(result.stdout)["certificates"]}


def test_a_site_enrolls_without_its_key_leaving_its_folder(world: dict[str, Path]) -> None:
    w = world
    repo, spec = w["repo"], w["spec"]
    fed = load_federation(spec)
    assert _certs(w)[1][SITE]["status"] == "not-issued"
    request_dir = _site_request(w)
    kit = request_dir.parent

    # The PR: the site's request zip at its documented place; then the operator approves the committed file.
    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes((request_dir / f"{SITE}.request.zip").read_bytes())
    result = _approve(w, repo / REQ_REL)
    assert result.exit_code == 0, result.output
    fp = fingerprint(server_root_pem(repo, fed) or b"")
    assert result.stdout.strip() == SIGNED_REL
    assert f"root CA fingerprint {fp}" in result.stderr and "approved site-c" in result.stderr
    assert not any(w["scratch"].iterdir()), "approve left its temporary CA folder behind"
    assert (kit / "ROOTCA_FINGERPRINT").read_text().strip() == fp

    # The site packages its kit with the fingerprint it confirmed out of band.
    _wait(_nvflare(["package", str(repo / SIGNED_REL), "--request-dir", SITE, "-w", "workspace", "--fingerprint", fp], kit, w["site"] / "home"))
    startup = kit / "workspace" / PROJECT / "prod_00" / SITE / "startup"
    cert = x509.load_pem_x509_certificate((startup / "client.crt").read_bytes())
    server_root = x509.load_pem_x509_certificate(server_root_pem(repo, fed) or b"")
    assert chains_to(cert, server_root)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SITE
    assert (startup / "rootCA.pem").read_bytes() == server_root.public_bytes(serialization.Encoding.PEM)
    fed_client = json.loads((startup / "fed_client.json").read_text())
    assert fed_client["servers"][0]["service"]["target"] == f"{fed.server.default_host}:{fed.server.fl_port}"
    assert fed_client["servers"][0]["identity"] == fed.server.name  # the server certificate's CN

    # The site's key exists only in the site's folder: not in the repo, the state, NVFlare's audit files of the
    # operator, or the scratch folder.
    key = serialization.load_pem_private_key((request_dir / f"{SITE}.key").read_bytes(), None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem_body = "".join((request_dir / f"{SITE}.key").read_text().strip().splitlines()[1:-1])
    needles = (der, base64.b64encode(der)[:64], pem_body[:64].encode(), hex(key.private_numbers().d)[2:66].encode())  # type: ignore[union-attr]
    scanned = 0
    for path in sorted(p for p in w["site"].parent.rglob("*") if p.is_file() and w["site"] not in p.parents):
        for data in _contents(path):
            scanned += 1
            flat = data.replace(b"\n", b"")
            assert not any(n in flat for n in needles), f"site-c's private key leaked into {path}"
    assert scanned > 40
    state = json.loads((repo / ".fedgen/state/genomics/state.json").read_text())
    assert set(state["enrolled"][SITE]) >= {"certificate", "request_sha256", "signed_sha256", "serial"}
    assert SITE not in state["nvflare_cert"] and "PRIVATE KEY" not in json.dumps(state["enrolled"])

    # fedgen certs now reports the enrolled certificate.
    code, rows = _certs(w)
    assert code == 0 and rows[SITE]["status"] == "ok" and 300 < rows[SITE]["days_left"] <= 360

    # Re-approving the unchanged request writes nothing, not even an mtime.
    before = _repo_state(repo)
    again = _approve(w, repo / REQ_REL)
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.stderr
    assert _repo_state(repo) == before

    # A lost signed zip comes back byte for byte from the state.
    signed = (repo / SIGNED_REL).read_bytes()
    (repo / SIGNED_REL).unlink()
    restored = _approve(w, repo / REQ_REL)
    assert restored.exit_code == 0 and "restored" in restored.stderr
    assert (repo / SIGNED_REL).read_bytes() == signed


def _readme_key_fingerprint(kit: Path) -> str:
    """Run the command of the kit README's step 3 in the kit folder, as the site pastes it into a shell."""
    section = (kit / "README.md").read_text().split("## 3. ", 1)[1].split("\n## ", 1)[0]
    command = next(line.strip() for line in section.splitlines() if line.startswith("    python3 "))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", command], cwd=kit, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _cert_key_sha256(signed_zip: bytes) -> str:
    cert = x509.load_pem_x509_certificate(inspect_signed_zip(signed_zip).certificate_pem)
    return hashlib.sha256(cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def test_a_replaced_request_with_another_key_needs_replace(world: dict[str, Path], tmp_path: Path) -> None:
    """Site names and orgs are public: an attacker's own `nvflare cert request` for the same site, swapped in
    for the committed request by a pull request, is refused until the operator confirms the new key."""
    w = world
    repo = w["repo"]
    request_dir = _site_request(w)
    kit = request_dir.parent
    site_fp = _readme_key_fingerprint(kit)
    assert site_fp.startswith("SHA256:") and len(site_fp) == 7 + 32 * 3 - 1

    # The attacker: the same public participant.yaml, its own key, its own folder and HOME.
    attacker = tmp_path / "attacker"
    (attacker / "home").mkdir(parents=True)
    shutil.copy(kit / "participant.yaml", attacker / "participant.yaml")
    _wait(_nvflare(["cert", "request", "-p", "participant.yaml"], attacker, attacker / "home"))
    attacker_fp = _readme_key_fingerprint_of(attacker / SITE / f"{SITE}.csr")
    assert attacker_fp != site_fp

    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes((request_dir / f"{SITE}.request.zip").read_bytes())
    first = _approve(w, repo / REQ_REL, "--key-fingerprint", site_fp.lower().replace("sha256:", ""))
    assert first.exit_code == 0 and "approved site-c" in first.stderr, first.output
    assert f"request public key {site_fp}" in first.stderr

    # The pull request that swaps the request zip is merged; approving it is refused, with both fingerprints.
    (repo / REQ_REL).write_bytes((attacker / SITE / f"{SITE}.request.zip").read_bytes())
    state_file = repo / ".fedgen/state/genomics/state.json"
    before = _repo_state(repo)
    refused = _approve(w, repo / REQ_REL)
    assert refused.exit_code == 2, refused.output
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert attacker_fp in refused.stderr and site_fp in refused.stderr and "--replace" in refused.stderr
    assert _repo_state(repo) == before
    assert not any(w["scratch"].iterdir())

    # Without the state's record, the committed signed zip (issued under the server's root) is the evidence.
    recorded = state_file.read_bytes()
    document = StateDocument.from_bytes(recorded, "state")
    document.enrolled.clear()
    state_file.write_bytes(document.to_bytes())
    from_zip = _approve(w, repo / REQ_REL)
    assert from_zip.exit_code == 2 and site_fp in from_zip.stderr and SIGNED_REL in from_zip.stderr, from_zip.output
    state_file.write_bytes(recorded)
    before = _repo_state(repo)

    # The fingerprint the site sent over the second channel is not this request's.
    wrong = _approve(w, repo / REQ_REL, "--replace", "--yes", "--key-fingerprint", site_fp)
    assert wrong.exit_code == 2 and "--key-fingerprint" in wrong.stderr and attacker_fp in wrong.stderr, wrong.output
    assert _repo_state(repo) == before

    # --replace cannot be undone: without a terminal to ask on, only with --yes.
    unasked = _approve(w, repo / REQ_REL, "--replace")
    assert unasked.exit_code == 2 and "pass --yes" in unasked.stderr, unasked.output
    assert _repo_state(repo) == before

    # The operator confirmed the new key with the site (say it really lost its key): --replace signs it.
    replaced = _approve(w, repo / REQ_REL, "--replace", "--yes")
    assert replaced.exit_code == 0 and "re-approved site-c" in replaced.stderr, replaced.output
    (backup,) = sorted(state_file.parent.glob("state.json.backup-*"))  # first, a copy of the state beside it
    assert f"backed up the state {state_file.parent} to {backup}" in replaced.stderr
    assert backup.read_bytes() == recorded and backup.stat().st_mode & 0o777 == 0o600
    assert f"request public key {attacker_fp}" in replaced.stderr and f"replaced the key signed for site-c before ({site_fp})" in replaced.stderr
    signed = (repo / SIGNED_REL).read_bytes()
    assert key_fingerprint(_cert_key_sha256(signed)) == attacker_fp

    # Approving the same request again, without --replace, is unchanged and writes nothing.
    before = _repo_state(repo)
    again = _approve(w, repo / REQ_REL)
    assert again.exit_code == 0 and "unchanged" in again.stderr and f"request public key {attacker_fp}" in again.stderr, again.output
    assert _repo_state(repo) == before


def _readme_key_fingerprint_of(csr: Path) -> str:
    """The README's fingerprint command run on another CSR (the attacker's), to compare with approve's output."""
    proc = subprocess.run(["bash", "-c", key_fingerprint_command(str(csr))], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --------------------------------------------------------------------------------------- refused requests


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _tampered_csr(members: dict[str, bytes]) -> dict[str, bytes]:
    csr = members[f"{SITE}.csr"]
    i = csr.index(b"\n", 40) + 10  # a byte inside the base64 body
    flipped = csr[:i] + (b"A" if csr[i : i + 1] != b"A" else b"B") + csr[i + 1 :]
    return {**members, f"{SITE}.csr": flipped}


def test_refused_requests_exit_2_and_write_nothing(world: dict[str, Path]) -> None:
    w = world
    repo, site = w["repo"], w["site"]
    # Real requests, made in parallel: another project, an undeclared site, a site that enrolls by bundle.
    real = {}
    procs = []
    for label, project, name, org in (
        ("other-project", "proteomics", SITE, ORG),
        ("undeclared", PROJECT, "site-z", ORG),
        ("bundle-site", PROJECT, "site-a", "hospital_a"),
    ):
        folder = site / label
        folder.mkdir()
        (folder / "p.yaml").write_text(f"name: {project}\nparticipants:\n  - name: {name}\n    type: client\n    org: {org}\n")
        procs.append(_nvflare(["cert", "request", "-p", "p.yaml"], folder, site / "home"))
        real[label] = folder / name / f"{name}.request.zip"
    for proc in procs:
        _wait(proc)
    site_key = _key()
    good = craft_request(key=site_key)
    key_pem = site_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    crafted = {
        "tampered-csr": zip_bytes(_tampered_csr(good)),
        "cn-mismatch": zip_bytes(craft_request(cn="site-x")),
        "org-mismatch": zip_bytes(craft_request(org="hospital_z")),
        "key-inside": zip_bytes({**good, f"{SITE}.key": key_pem}),
        "key-in-yaml": zip_bytes({**good, "site.yaml": good["site.yaml"] + b"# " + key_pem.replace(b"\n", b"\n# ")}),
        "path-traversal": zip_bytes({**good, f"../{SITE}.csr": good[f"{SITE}.csr"]}),
        "extra-member": zip_bytes({**good, "notes.txt": b"hello"}),
        "signed-not-request": b"PK\x03\x04" + b"\0" * 40,
    }
    for label, data in crafted.items():
        real[label] = site / f"{label}.request.zip"
        real[label].write_bytes(data)
    expected = {
        "other-project": "project 'proteomics'",
        "undeclared": "'site-z' is not declared",
        "bundle-site": "enrolls by bundle",
        "tampered-csr": "does not match the digest",
        "cn-mismatch": "CN 'site-x'",
        "org-mismatch": "org 'hospital_z'",
        "key-inside": "private key",
        "key-in-yaml": "private key",
        "path-traversal": "unsafe member",
        "extra-member": "unexpected notes.txt",
        "signed-not-request": "not a readable zip",
    }
    before = _repo_state(repo)
    for label, path in real.items():
        result = _approve(w, path)
        assert result.exit_code == 2, (label, result.output)
        assert expected[label] in result.stderr, (label, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (label, result.stderr)
        assert _repo_state(repo) == before, label
    assert not any(w["scratch"].iterdir())

    # A committed request is the one that gets approved: another request for the same site is refused.
    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes(zip_bytes(good))
    before = _repo_state(repo)
    other = site / "other.request.zip"
    other.write_bytes(zip_bytes(craft_request()))
    result = _approve(w, other)
    assert result.exit_code == 2 and "holds another request" in result.stderr, result.output
    assert _repo_state(repo) == before


def test_kit_needs_a_request_site_and_takes_the_root_from_state_or_configmap(world: dict[str, Path], tmp_path: Path) -> None:
    w = world
    spec, repo = w["spec"], w["repo"]
    from_state = tmp_path / "kit-state"
    result = fedgen_cli("enroll", "kit", SITE, "--spec", str(spec), "--repo", str(repo), "--out", str(from_state))
    assert result.exit_code == 0, result.output
    assert "root CA from state" in result.stderr
    files = {p.name: p.read_bytes() for p in from_state.iterdir()}
    assert set(files) == {"participant.yaml", "project_profile.yaml", "ROOTCA_FINGERPRINT", "README.md"}
    assert not any(b"PRIVATE KEY" in data for data in files.values())
    fp = fingerprint(server_root_pem(repo, load_federation(spec)) or b"")
    assert files["ROOTCA_FINGERPRINT"].decode().strip() == fp
    readme = files["README.md"].decode()
    for needle in ("nvflare cert request -p participant.yaml", REQ_REL, f"--fingerprint {fp}", "--request-dir site-c", "client_train"):
        assert needle in readme, needle

    from_repo = tmp_path / "kit-repo"
    empty_state = tmp_path / "no-state"
    result = fedgen_cli("enroll", "kit", SITE, "--spec", str(spec), "--repo", str(repo), "--state", str(empty_state), "--out", str(from_repo))
    assert result.exit_code == 0, result.output
    assert "root CA from tenants/fl-genomics/nvflare-flserver/configmaps.yaml" in result.stderr
    assert (from_repo / "ROOTCA_FINGERPRINT").read_bytes() == files["ROOTCA_FINGERPRINT"]
    assert (from_repo / "participant.yaml").read_bytes() == files["participant.yaml"]
    assert not empty_state.exists()

    for name, message in (("site-a", "fedgen client-bundle site-a"), ("site-z", "not declared")):
        refused = fedgen_cli("enroll", "kit", name, "--spec", str(spec), "--repo", str(repo), "--out", str(tmp_path / name))
        assert refused.exit_code == 2 and message in refused.stderr, refused.output
        assert not (tmp_path / name).exists()


# Until provision/core.py carries StateDocument.enrolled into the document it returns, every render drops the
# records of enrolled sites (fedgen certs then says not-issued, and approve re-signs instead of 'unchanged').
def test_renders_keep_enrollment_and_a_new_root_ca_reapproves_the_same_request(world: dict[str, Path]) -> None:
    w = world
    repo, spec = w["repo"], w["spec"]
    fed = load_federation(spec)
    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes(zip_bytes(craft_request()))
    first = _approve(w, repo / REQ_REL)
    assert first.exit_code == 0, first.output
    old_fp = fingerprint(server_root_pem(repo, fed) or b"")

    assert fedgen_cli("render", str(spec), "--repo", str(repo)).exit_code == 0
    assert _certs(w)[1][SITE]["status"] == "ok"
    assert "unchanged" in _approve(w, repo / REQ_REL).stderr

    # A new root CA: the enrolled certificate is stale until the same request is approved again (same key).
    assert fedgen_cli("rotate", "--root-ca", "--spec", str(spec), "--repo", str(repo), "--yes").exit_code == 0
    code, rows = _certs(w)
    assert code == 1 and rows[SITE]["status"] == "stale"
    renewed = _approve(w, repo / REQ_REL)
    assert renewed.exit_code == 0 and "re-approved" in renewed.stderr, renewed.output
    new_root = server_root_pem(repo, fed) or b""
    info = inspect_signed_zip((repo / SIGNED_REL).read_bytes())
    assert info.rootca_fingerprint == fingerprint(new_root) != old_fp
    assert chains_to(x509.load_pem_x509_certificate(info.certificate_pem), x509.load_pem_x509_certificate(new_root))
    assert _certs(w)[1][SITE]["status"] == "ok"


def test_who_must_act_follows_an_enrolled_site(world: dict[str, Path], write_spec: SpecWriter) -> None:
    """Render, approve and rotate name the site enrolling by request with what it needs (issue 17)."""
    w = world
    repo, spec = w["repo"], w["spec"]

    def who(result: Result) -> dict[str, Any]:
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["who_must_act"]

    def render_json(*args: str) -> dict[str, Any]:
        return who(fedgen_cli(*(args or ("render", str(spec))), "--repo", str(repo), "--format", "json"))

    site = {r["name"]: r for r in render_json()["must_act"]}[SITE]
    assert (site["action"], site["command"], [r["reason"] for r in site["reasons"]]) == (
        "enroll-kit",
        f"fedgen enroll kit {SITE} --spec {spec}",
        ["not-enrolled"],
    )

    key = _key()
    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes(zip_bytes(craft_request(key=key)))
    first = _approve(w, repo / REQ_REL, "--format", "json")
    document = json.loads(first.stdout)  # stdout: the document only
    assert (document["action"], document["site"], document["signed"]) == ("approved", SITE, SIGNED_REL)
    assert who(first)["must_act"] == [
        {
            "name": SITE,
            "kind": "client",
            "action": "package",
            "command": None,
            "reasons": [{"reason": "new-participant", "old": None, "new": None, "fields": []}],
        }
    ]
    assert who(first)["new"] == [SITE]
    assert SITE not in {r["name"] for r in render_json()["must_act"]}
    assert who(_approve(w, repo / REQ_REL, "--format", "json"))["must_act"] == []  # unchanged: nobody

    # A new request with the same key (merged through a PR) signs anew under the same root: the old
    # certificate stays valid until it expires.
    old_not_after = json.loads((repo / ".fedgen/state/genomics/state.json").read_text())["enrolled"][SITE]["not_after"]
    (repo / REQ_REL).write_bytes(zip_bytes(craft_request(key=key)))
    renewed = who(_approve(w, repo / REQ_REL, "--format", "json"))
    assert [(r["action"], [x["reason"] for x in r["reasons"]]) for r in renewed["must_act"]] == [("package", ["own-certificate"])]
    (superseded,) = renewed["superseded"]
    assert superseded["name"] == SITE and superseded["valid_until"].startswith(old_not_after[:19])

    # A new root CA: rotate names the site with the approval it needs; approving names the site again.
    rotated = {r["name"]: r for r in render_json("rotate", "--root-ca", "--spec", str(spec), "--yes")["must_act"]}
    assert rotated[SITE]["action"] == "approve" and [r["reason"] for r in rotated[SITE]["reasons"]] == ["root-ca"]
    assert rotated[SITE]["command"] == f"fedgen enroll approve {REQ_REL} --spec {spec}"
    text = _approve(w, repo / REQ_REL)
    assert text.exit_code == 0, text.output
    assert f"  {SITE}: pull {SIGNED_REL} and package its kit (nvflare package) (root CA changed)" in text.stderr

    # Removed from the spec: its certificate still chains to the root; no request site is left to re-approve.
    write_spec()
    removed = render_json()
    assert removed["removed"] == [{"name": SITE, "kind": "client"}]
    assert [c["name"] for c in removed["still_valid"]] == [SITE] and removed["root_rotation"]["reapprove"] == []
    certs = json.loads(fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json").stdout)
    assert [c["name"] for c in certs["still_valid"]] == [SITE]


def test_the_signed_zip_carries_the_server_name_and_fl_port_and_a_new_one_is_signed_when_they_change(world: dict[str, Path], write_spec: SpecWriter) -> None:
    """What an enrolled site's kit takes from its signed zip (NVFlare 2.9): rootCA.pem, the server's name and fl
    port (signed.json's server block); the host it dials comes from its own request folder's site.yaml. So a new
    fl port needs a new signed zip (approve re-signs, who must act says so), a new host name an edit by the site."""
    w = world
    repo, spec = w["repo"], w["spec"]
    request_dir = _site_request(w)
    kit = request_dir.parent
    (repo / REQ_REL).parent.mkdir(parents=True)
    (repo / REQ_REL).write_bytes((request_dir / f"{SITE}.request.zip").read_bytes())
    assert _approve(w, repo / REQ_REL).exit_code == 0
    with zipfile.ZipFile(repo / SIGNED_REL) as zf:
        assert sorted(zf.namelist()) == sorted(["signed.json", "signed.json.sig", "site.yaml", f"{SITE}.crt", "rootCA.pem"])
        assert json.loads(zf.read("signed.json"))["server"] == {"host": "flserver", "fed_learn_port": 9102, "admin_port": 9103}
    fp = fingerprint(server_root_pem(repo, load_federation(spec)) or b"")
    startup = kit / "workspace" / PROJECT / "prod_00" / SITE / "startup"

    def package() -> str:
        args = ["package", str(repo / SIGNED_REL), "--request-dir", SITE, "-w", "workspace", "--fingerprint", fp, "--force"]
        _wait(_nvflare(args, kit, w["site"] / "home"))
        return str(json.loads((startup / "fed_client.json").read_text())["servers"][0]["service"]["target"])

    def render_who(*args: str) -> dict[str, dict[str, Any]]:
        result = fedgen_cli("render", str(spec), "--repo", str(repo), "--format", "json", *args)
        assert result.exit_code in (0, 1), result.output
        return {r["name"]: r for r in json.loads(result.stdout)["who_must_act"]["must_act"]}

    assert package() == "fl.genomics.example.org:9102"

    def moved(port: int, host: str) -> Callable[[dict[str, Any]], None]:
        def edit(d: dict[str, Any]) -> None:
            with_request_site(d)
            d["spec"]["server"]["ports"]["fl"] = port
            d["spec"]["server"]["hostNames"] = [host, "flserver"]

        return edit

    # A new fl port: the signed zip is out of date until approved again, and render says so on every run.
    write_spec(moved(9202, "fl.genomics.example.org"))
    for _ in range(2):
        site = render_who()[SITE]
        assert (site["action"], site["command"]) == ("approve", f"fedgen enroll approve {REQ_REL} --spec {spec}")
        assert [(r["reason"], r["old"], r["new"], r["fields"]) for r in site["reasons"]] == [
            (
                "port",
                "9102",
                "9202",
                [
                    {
                        "file": "startup/fed_client.json",
                        "field": "servers[0].service.target",
                        "old": "fl.genomics.example.org:9102",
                        "new": "fl.genomics.example.org:9202",
                    }
                ],
            )
        ]
    approved = _approve(w, repo / REQ_REL, "--format", "json")
    assert approved.exit_code == 0, approved.output
    document = json.loads(approved.stdout)
    assert document["action"] == "re-approved"
    (recipient,) = document["who_must_act"]["must_act"]
    assert (recipient["action"], [(r["reason"], r["old"], r["new"]) for r in recipient["reasons"]]) == ("package", [("port", "9102", "9202")])
    assert inspect_signed_zip((repo / SIGNED_REL).read_bytes()).fl_port == 9202
    assert package() == "fl.genomics.example.org:9202"
    assert "unchanged" in _approve(w, repo / REQ_REL).stderr
    assert SITE not in render_who()

    # A new host name: the signed zip does not carry it (approve stays unchanged); the site sets connect_to.host
    # in its request folder's site.yaml and re-packages, as who must act tells it.
    write_spec(moved(9202, "fl2.genomics.example.org"))
    site = render_who("--check")[SITE]  # (--check writes nothing: the render below says the same)
    assert (site["action"], site["command"], [r["reason"] for r in site["reasons"]]) == ("reconfigure", None, ["host-name"])
    assert (
        f"  {SITE}: it sets connect_to.host: fl2.genomics.example.org in {SITE}/site.yaml (its request folder), then it re-packages "
        "its kit (nvflare package --force) (host name fl.genomics.example.org -> fl2.genomics.example.org)"
    ) in fedgen_cli("render", str(spec), "--repo", str(repo)).stderr
    assert SITE not in render_who()  # said once: the site's own configuration is not fedgen's to track
    assert "unchanged" in _approve(w, repo / REQ_REL).stderr
    site_yaml = request_dir / "site.yaml"
    site_yaml.write_text(site_yaml.read_text().replace("host: fl.genomics.example.org", "host: fl2.genomics.example.org"))
    assert package() == "fl2.genomics.example.org:9202"


# ---------------------------------------------------------------------------------------- pure helpers


def test_inspect_request_accepts_nvflare_shape_and_refuses_unsafe_zips(write_spec: SpecWriter) -> None:
    fed = load_federation(write_spec(with_request_site))
    good = craft_request()
    info = inspect_request_zip(zip_bytes(good))
    assert (info.project, info.name, info.org, info.key_bits) == (PROJECT, SITE, ORG, 2048)
    assert check_request(fed, info).name == SITE
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cases = {
        "too large": (b"PK\x03\x04" + os.urandom(70_000), "more than"),
        "weak key": (zip_bytes(craft_request(key=weak)), "at least 2048"),
        "folder": (zip_bytes({**good, "sub/": b""}), "unsafe member"),
        "absolute": (zip_bytes({**good, "/etc/passwd": b"x"}), "unsafe member"),
        "bad name": (zip_bytes(craft_request(name="site c")), "client name rule"),
    }
    for data, message in cases.values():
        with pytest.raises(InputError, match=message):
            inspect_request_zip(data)
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as zf:
        for name, data in good.items():
            zf.writestr(name, data)
        entry = zipfile.ZipInfo("site.lnk")
        entry.external_attr = 0o120777 << 16
        zf.writestr(entry, "/etc/passwd")
    with pytest.raises(InputError, match="unsafe member"):
        inspect_request_zip(link.getvalue())
    key_pem = _key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    for holder in ({**good, "extra.pem": key_pem}, {**good, "request.json": good["request.json"] + key_pem}):
        with pytest.raises(PrivateKeyFound):
            inspect_request_zip(zip_bytes(holder))
    other = inspect_request_zip(zip_bytes(craft_request()))
    with pytest.raises(InputError):
        check_request(fed, inspect_request_zip(zip_bytes(craft_request(project="proteomics"))))
    assert other.sha256 != info.sha256
    assert classify(REQ_REL) is not None and classify(SIGNED_REL) is not None
    assert classify(f"enrollment/{PROJECT}/signed/{SITE}.request.zip") is None and classify("enrollment/x.zip") is None
    answer = SignedInfo(
        project=PROJECT,
        name=SITE,
        org=ORG,
        request_id=info.request_id,
        approved_at="2026-01-01T00:00:00Z",
        certificate_pem=b"",
        rootca_pem=b"",
        rootca_fingerprint="",
        serial="0x1",
        not_after=datetime.now(timezone.utc),
        csr_sha256=info.csr_sha256,
        public_key_sha256=info.public_key_sha256,
        server_host="flserver",
        fl_port=1,
        admin_port=2,
        connect_to=None,
        sha256="",
    )
    check_pair(info, answer)
    with pytest.raises(InputError, match="another request"):
        check_pair(other, answer)


def _cert(subject: str, issuer_key: rsa.RSAPrivateKey, issuer: str, key: rsa.RSAPrivateKey, *, ca: bool, days: int = 360) -> str:
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_certs_reads_enrolled_sites_from_the_state(write_spec: SpecWriter) -> None:
    fed = load_federation(write_spec(with_request_site))
    root_key, other_key, leaf_key = _key(), _key(), _key()
    root = _cert(PROJECT, root_key, PROJECT, root_key, ca=True)
    document = StateDocument(project=PROJECT, nvflare_cert={"root_cert": root})
    rows = {c.name: c for c in certificate_report(fed, document, within_days=30)}
    assert rows[SITE].status == "not-issued" and rows[SITE].kind == "client"
    document.enrolled[SITE] = {"certificate": _cert(SITE, root_key, PROJECT, leaf_key, ca=False, days=20)}
    assert {c.name: c for c in certificate_report(fed, document, within_days=30)}[SITE].status == "expiring"
    document.enrolled[SITE] = {"certificate": _cert(SITE, root_key, PROJECT, leaf_key, ca=False)}
    row = {c.name: c for c in certificate_report(fed, document, within_days=30)}[SITE]
    assert row.status == "ok" and row.days_left is not None and row.days_left >= 359
    document.enrolled[SITE] = {"certificate": _cert(SITE, other_key, PROJECT, leaf_key, ca=False)}
    assert {c.name: c for c in certificate_report(fed, document, within_days=30)}[SITE].status == "stale"


# ------------------------------------------------------------------------------ kit commands, quoted

_RECORDER = '#!/bin/sh\n{ printf "%s\\n" "$PWD" "$@"; echo "<end of call>"; } >> "$ARGS_FILE"\n'
_ODD = " $;'\"`&|<>()*?[]{}!#~\\=%"


def _indented_script(readme: str, heading: str) -> str:
    """The indented command lines of a README section, as the site pastes them (placeholder lines left out)."""
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line[4:] for line in section.splitlines() if line.startswith("    ")]
    return "\n".join(line for line in lines if "<path to>" not in line and "<clone>" not in line)


def _recorded(script: str, cwd: Path, stubs: Path) -> list[list[str]]:
    """Run `script` with stubbed git, nvflare, fedgen and python3; each call as [cwd, *args]."""
    record = cwd.parent / "calls"
    record.unlink(missing_ok=True)
    assert subprocess.run(["bash", "-n", "-c", script], capture_output=True, timeout=30).returncode == 0, script
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "ARGS_FILE": str(record)}
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, (script, proc.stderr)
    calls: list[list[str]] = [[]]
    for line in record.read_text().splitlines() if record.exists() else []:
        if line == "<end of call>":
            calls.append([])
        else:
            calls[-1].append(line)
    return calls[:-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    revision=st.text(alphabet="ab09._+/-", min_size=1, max_size=16),
    out_name=st.text(alphabet=_ODD + "ab-", min_size=1, max_size=16),
    spec_name=st.text(alphabet=_ODD + "ab/", min_size=1, max_size=16),
)
def test_kit_readme_commands_run_as_intended_with_odd_but_valid_values(
    write_spec: SpecWriter, tmp_path_factory: pytest.TempPathFactory, revision: str, out_name: str, spec_name: str
) -> None:
    """Every command of the kit README, with any revision the spec accepts and a kit folder and spec path full
    of shell syntax, passes `bash -n` and runs exactly the intended command (stubs record the arguments)."""
    from fedgen.enroll.kit import CLIENT_MODULE, readme
    from fedgen.enroll.rootca import RootCA
    from fedgen.spec.semantic import git_ref_problem

    assume(git_ref_problem(revision) is None and out_name not in (".", ".."))

    def edit(d: dict[str, Any]) -> None:
        with_request_site(d)
        d["spec"]["gitops"]["revision"] = revision

    fed = load_federation(write_spec(edit))
    site = next(s for s in fed.sites if s.name == SITE)
    root = RootCA(b"", "test", "SHA256:" + ":".join(["AB"] * 32))
    text = readme(fed, site, root, spec_name, out_name).decode()
    work = tmp_path_factory.mktemp("kit-commands")
    stubs = work / "bin"
    stubs.mkdir()
    for tool_name in ("git", "nvflare", "fedgen", "python3"):
        (stubs / tool_name).write_text(_RECORDER)
        (stubs / tool_name).chmod(0o755)
    clone = work / "clone"
    (clone / out_name).mkdir(parents=True)

    assert _recorded(_indented_script(text, "## 2. "), clone, stubs) == [[str(clone / out_name), "cert", "request", "-p", "participant.yaml"]]
    c = str(clone)
    assert _recorded(_indented_script(text, "## 4. "), clone, stubs) == [
        [c, "checkout", "-b", f"enroll-{SITE}", f"origin/{revision}"],
        [c, "add", REQ_REL],
        [c, "commit", "-m", f"enroll {SITE} in {PROJECT}"],
        [c, "push", "-u", "origin", f"enroll-{SITE}"],
        [c, "enroll", "approve", REQ_REL, "--spec", spec_name, "--key-fingerprint", "SHA256:..."],
    ]
    assert (clone / REQ_REL).parent.is_dir()  # the mkdir -p line ran as written
    kit = f"workspace/{PROJECT}/prod_00/{SITE}"
    assert _recorded(_indented_script(text, "## 6. "), clone, stubs) == [
        [
            c,
            "-u",
            "-m",
            CLIENT_MODULE,
            "-m",
            f"{c}/{kit}",
            "-s",
            "fed_client.json",
            "--set",
            "secure_train=true",
            f"uid={SITE}",
            "config_folder=config",
            f"org={ORG}",
        ],
    ]
