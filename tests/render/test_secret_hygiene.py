"""No plaintext secret in a rendered repo, checked by an independent scanner: Yelp's detect-secrets (PyPI).

The scanner runs as its command line (`detect-secrets scan --all-files`) over every file of a freshly rendered
repo except the state folder (.fedgen/state: git-ignored, where the keys live by design; the test also scans
it, to show the scanner does see keys). All plugins are on, none is disabled and no line is excluded by
pattern. What it reports is then judged one finding at a time: a finding is accepted only when the string it
hashed (detect-secrets reports the SHA-1 of what it found) is provably not a secret:

- the ciphertext of a SealedSecret: a value of `spec.encryptedData` of a SealedSecret whose bytes have the
  Sealed Secrets layout (2-byte length of an RSA-OAEP session key of the sealing certificate's size, the key,
  then AES-GCM data), which only the cluster's controller can open;
- a SHA-256 digest in the ownership ledger that equals the digest of the repo file it names, or the kit
  digest annotation of a Deployment (a truncated hash);
- the file name "server.key" (NVFlare's fed_server.json names its key file `ssl_private_key`).

Anything else fails the test, and a planted private key (plain, and base64 in a Secret) is shown to fail it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from fedgen.cli import main

SpecWriter = Callable[..., Path]
DETECT_SECRETS = str(Path(sys.executable).parent / "detect-secrets")
STATE = ".fedgen/state"


def scan(root: Path, *, exclude_state: bool = True) -> list[dict[str, Any]]:
    """detect-secrets over every file under root: [{filename, type, line_number, hashed_secret}]."""
    if not Path(DETECT_SECRETS).exists():
        pytest.fail("detect-secrets is not installed: pip install -e '.[test]'", pytrace=False)
    args = [DETECT_SECRETS, "scan", "--all-files"]
    if exclude_state:
        args += ["--exclude-files", r"^\.fedgen/state/"]
    proc = subprocess.run(args + ["."], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    return [dict(r, filename=name) for name, found in sorted(results.items()) for r in found]


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _sealed_ciphertext(value: str, key_bytes: int) -> bool:
    """Sealed Secrets' hybrid layout: uint16 length of the RSA-OAEP-encrypted session key, the key, AES-GCM data."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return len(raw) > 2 + key_bytes + 16 and int.from_bytes(raw[:2], "big") == key_bytes


def accepted(root: Path, finding: dict[str, Any], sealing_key_bytes: int) -> str | None:
    """Why this finding is not a secret, or None."""
    path = root / finding["filename"]
    line = path.read_text().splitlines()[finding["line_number"] - 1]
    hashed = finding["hashed_secret"]
    key, _, value = line.strip().partition(":")
    value = value.strip().strip('",')
    key = key.strip().strip('"')

    if finding["type"] == "Base64 High Entropy String" and _sha1(value) == hashed:
        for doc in YAML(typ="safe", pure=True).load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SealedSecret":
                if doc["spec"]["encryptedData"].get(key) == value and _sealed_ciphertext(value, sealing_key_bytes):
                    return "SealedSecret ciphertext"
    if finding["type"] == "Hex High Entropy String" and _sha1(value) == hashed:
        if finding["filename"].startswith(".fedgen/owned/") and key in json.loads(path.read_text())["files"]:
            if hashlib.sha256((root / key).read_bytes()).hexdigest() == value:
                return "digest of a repo file in the ownership ledger"
        if key == "fedgen.dev/kit-digest" and len(value) == 16:
            return "kit digest annotation (a truncated hash)"
    if finding["type"] == "Secret Keyword" and hashed == _sha1("server.key") and key == "ssl_private_key":
        return "the name of the key file in fed_server.json"
    return None


def unexplained(root: Path, findings: list[dict[str, Any]], sealing_key_bytes: int) -> list[str]:
    return [f"{f['filename']}:{f['line_number']}: {f['type']}" for f in findings if accepted(root, f, sealing_key_bytes) is None]


@pytest.fixture
def rendered(write_spec: SpecWriter) -> Path:
    spec = write_spec()
    repo = spec.parent.parent
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def key_bytes_of(certificate: Path) -> int:
    """Size in bytes of the RSA key of a sealing certificate (the length of a sealed session key)."""
    from cryptography import x509

    return x509.load_pem_x509_certificate(certificate.read_bytes()).public_key().key_size // 8  # type: ignore[union-attr]


@pytest.fixture
def key_bytes(rendered: Path) -> int:
    return key_bytes_of(rendered / "spec" / "sealing.pem")


def test_a_freshly_rendered_repo_has_no_secret(rendered: Path, key_bytes: int) -> None:
    findings = scan(rendered)
    assert unexplained(rendered, findings, key_bytes) == []
    # The accepted findings are what the docstring says, and the ciphertext is among them (the scanner did
    # look at the SealedSecret).
    reasons = {accepted(rendered, f, key_bytes) for f in findings}
    assert "SealedSecret ciphertext" in reasons, findings


def test_the_scanner_sees_the_keys_in_the_state(rendered: Path) -> None:
    """The same scanner on the state folder finds the private keys: it would find them anywhere else too."""
    findings = [f for f in scan(rendered, exclude_state=False) if f["filename"].startswith(STATE + "/")]
    assert any(f["type"] == "Private Key" for f in findings), findings


def test_a_planted_private_key_fails_the_check(rendered: Path, tmp_path: Path, key_bytes: int) -> None:
    state_file = next((rendered / STATE).rglob("state.json"))
    key_pem = json.loads(state_file.read_text())["nvflare_cert"]["flserver"]["pri_key"]
    configmap = next((rendered / "tenants").rglob("configmaps.yaml"))

    plain = tmp_path / "plain"
    shutil.copytree(rendered, plain)
    leaked = plain / configmap.relative_to(rendered)
    leaked.write_text(
        leaked.read_text()
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  server.key: |\n"
        + "".join(f"    {line}\n" for line in key_pem.splitlines())
    )
    problems = unexplained(plain, scan(plain), key_bytes)
    assert any("Private Key" in p and p.startswith(str(configmap.relative_to(rendered))) for p in problems), problems

    encoded = tmp_path / "encoded"
    shutil.copytree(rendered, encoded)
    secret = encoded / "tenants" / "leak-secret.yaml"
    secret.write_text(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\ndata:\n  server.key: {base64.b64encode(key_pem.encode()).decode()}\n")
    problems = unexplained(encoded, scan(encoded), key_bytes)
    assert any(p.startswith("tenants/leak-secret.yaml:") for p in problems), problems


def test_the_committed_example_tree_has_no_secret(tmp_path: Path) -> None:
    """What is in git: the example's rendered tree (clusters/, tenants/, terraform/, .fedgen/owned/)."""
    from tests.support import REPO_ROOT

    key_bytes = key_bytes_of(REPO_ROOT / "examples" / "keys" / "sealed-secrets.pem")
    copy = tmp_path / "example"
    for folder in ("clusters", "tenants", "terraform", ".fedgen/owned"):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(REPO_ROOT / folder, copy / folder)
    assert (copy / "tenants").is_dir()
    assert unexplained(copy, scan(copy), key_bytes) == []


def test_state_files_and_folders_are_owner_only(rendered: Path, write_spec: SpecWriter) -> None:
    state = rendered / STATE
    folders = [state, *(p for p in state.rglob("*") if p.is_dir())]
    files = [p for p in state.rglob("*") if p.is_file()]
    assert files and any(p.name == "state.json" for p in files)
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    # Bundles (they hold a private key) are written owner-only too.
    bundle = rendered.parent / "site-a.tar.gz"  # outside the repository: client-bundle refuses to write in it
    spec = rendered / "spec" / "federation.yaml"
    result = CliRunner().invoke(main, ["client-bundle", "site-a", "--spec", str(spec), "--repo", str(rendered), "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
