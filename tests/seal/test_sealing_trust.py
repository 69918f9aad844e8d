"""A render seals only to the sealing certificate the state records for each cluster, and `render --check` is
read-only: proven with the real kubeseal (--recovery-unseal) and the real fake-gcs-server behind a proxy
that refuses every write, as a read-only credential would."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fedgen.errors import InputError
from fedgen.seal.certificate import generate_development_keypair
from fedgen.seal.manifest import redact_ciphertext
from fedgen.spec.sealing_certificate import fingerprint, parse_fingerprint
from tests.gcs_emulator import Emulator
from tests.support import render_spec, tool, tree_snapshot

SpecWriter = Callable[..., Path]
SEALED = "tenants/fl-genomics/nvflare-flserver/sealed-secret.yaml"
STATE = ".fedgen/state/genomics/state.json"


def _tree(repo: Path) -> dict[str, bytes]:
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def _openssl_style(cert_pem: bytes) -> str:
    """The fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it, computed independently."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return "SHA256:" + ":".join(f"{b:02X}" for b in digest)


def _keypair(folder: Path, name: str) -> tuple[Path, bytes]:
    key, cert = generate_development_keypair(common_name=name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.key").write_bytes(key)
    (folder / f"{name}.key").chmod(0o600)
    return folder / f"{name}.key", cert


def _unseal(manifest: bytes, key: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool("kubeseal"), "--recovery-unseal", "--recovery-private-key", str(key), "-o", "json"],
        input=manifest,
        capture_output=True,
        timeout=60,
    )


def _manifest_with(value: str) -> bytes:
    """A SealedSecret of the server's key secret holding one server.key value (from a file or a diff line)."""
    return (
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: nvflare-flserver-key\n  namespace: fl-genomics\n"
        f"spec:\n  encryptedData:\n    server.key: {value}\n  template:\n    metadata:\n      name: nvflare-flserver-key\n      namespace: fl-genomics\n"
    ).encode()


def _server_key_values(text: str) -> list[str]:
    return re.findall(r"server\.key: (\S+)", text)


def test_a_pr_swapping_the_sealing_certificate_never_gets_the_key(rendered: tuple[Path, Path], sealing_keypair: tuple[Path, Path], tmp_path: Path) -> None:
    spec, repo = rendered
    attacker_key, attacker_cert = _keypair(tmp_path / "attacker", "attacker")
    real = _openssl_style(sealing_keypair[1].read_bytes())
    forged = _openssl_style(attacker_cert)
    (spec.parent / "sealing.pem").write_bytes(attacker_cert)  # the PR's whole change
    tree, state = _tree(repo), (repo / STATE).read_bytes()

    # The drift job: reports the change with both fingerprints, prints no ciphertext at all.
    check = render_spec(spec, "--check", "--diff")
    for value in _server_key_values(check.output):
        unsealed = _unseal(_manifest_with(value), attacker_key)
        assert unsealed.returncode != 0, "the attacker unsealed server.key from the drift job's output"
    assert not re.search(r"[A-Za-z0-9+/=]{200,}", check.output)  # no ciphertext-sized token anywhere
    assert check.exit_code == 1, check.output
    assert f"the state records {real}, the spec names {forged}" in check.stderr
    assert f"sealing-certificate\tgke-eu\t{real} -> {forged}" in check.stdout

    # A real render after merging: refused, nothing sealed or written.
    result = render_spec(spec)
    assert result.exit_code == 2, result.output
    assert real in result.stderr and forged in result.stderr and f"--accept-sealing-cert {forged}" in result.stderr
    assert _tree(repo) == tree and (repo / STATE).read_bytes() == state
    assert _unseal((repo / SEALED).read_bytes(), attacker_key).returncode != 0
    assert _unseal((repo / SEALED).read_bytes(), sealing_keypair[0]).returncode == 0


def test_a_rotated_controller_certificate_is_accepted_by_fingerprint(rendered: tuple[Path, Path], sealing_keypair: tuple[Path, Path], tmp_path: Path) -> None:
    spec, repo = rendered
    new_key, new_cert = _keypair(tmp_path / "rotated", "rotated")
    (spec.parent / "sealing.pem").write_bytes(new_cert)
    new = _openssl_style(new_cert)
    other = "SHA256:" + ":".join(["AB"] * 32)
    wrong = render_spec(spec, "--accept-sealing-cert", other)
    assert wrong.exit_code == 2 and "no cluster of the spec has this sealing certificate" in wrong.stderr
    assert render_spec(spec, "--check", "--accept-sealing-cert", new).exit_code == 2  # --check never seals to it

    accepted = render_spec(spec, "--accept-sealing-cert", new)
    assert accepted.exit_code == 0, accepted.output
    sealed = (repo / SEALED).read_bytes()
    unsealed = _unseal(sealed, new_key)
    assert unsealed.returncode == 0, unsealed.stderr.decode()
    assert b"PRIVATE KEY" in base64.b64decode(json.loads(unsealed.stdout)["data"]["server.key"])
    assert _unseal(sealed, sealing_keypair[0]).returncode != 0
    state = json.loads((repo / STATE).read_text())
    assert state["sealing_certificates"] == {"gke-eu": parse_fingerprint(new)}
    # Now recorded: the next renders need no flag, and going back to the old certificate needs one again.
    assert render_spec(spec).exit_code == 0 and render_spec(spec, "--check").exit_code == 0
    shutil.copy(sealing_keypair[1], spec.parent / "sealing.pem")
    back = render_spec(spec)
    assert back.exit_code == 2 and f"the state records {new}" in back.stderr


def test_a_state_from_before_the_record_trusts_what_it_sealed_with(rendered: tuple[Path, Path], tmp_path: Path) -> None:
    spec, repo = rendered
    doc = json.loads((repo / STATE).read_text())
    del doc["sealing_certificates"]  # as written by an older fedgen
    (repo / STATE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    assert render_spec(spec, "--check").exit_code == 0
    (spec.parent / "sealing.pem").write_bytes(_keypair(tmp_path / "attacker", "attacker")[1])
    assert render_spec(spec).exit_code == 2


def test_the_development_key_counts_as_recorded(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = write_spec(lambda d: d["spec"].pop("sealing"))
    repo = spec.parent.parent
    assert render_spec(spec).exit_code == 0
    dev = json.loads((repo / STATE).read_text())["sealing"]["certificate"].encode()
    _, cert = _keypair(tmp_path / "attacker", "attacker")
    spec = write_spec(lambda d: d["spec"].__setitem__("sealing", {"certificate": "attacker.pem", "scope": "strict"}))
    (spec.parent / "attacker.pem").write_bytes(cert)
    result = render_spec(spec)
    assert result.exit_code == 2 and f"the state records {_openssl_style(dev)}" in result.stderr


def test_a_site_cluster_certificate_is_pinned_too(write_spec: SpecWriter, sealing_keypair: tuple[Path, Path], tmp_path: Path) -> None:
    def with_site_cluster(d: dict[str, Any]) -> None:
        d["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}})
        d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
        d["spec"]["server"]["externalAddress"] = "203.0.113.10"

    site_key, site_cert = _keypair(tmp_path / "site", "hosp-a")
    spec = write_spec()
    repo = spec.parent.parent
    assert render_spec(spec).exit_code == 0
    (spec.parent / "hosp-a.pem").write_bytes(site_cert)
    write_spec(with_site_cluster)
    # A cluster new to an existing state has no recorded certificate: the operator accepts it once.
    added = render_spec(spec)
    assert added.exit_code == 2 and "cluster gke-hosp-a changed: the state records none" in added.stderr
    assert render_spec(spec, "--accept-sealing-cert", _openssl_style(site_cert)).exit_code == 0
    site_sealed = repo / "clusters/gke-hosp-a/sites/site-a/sealed-secret.yaml"
    assert _unseal(site_sealed.read_bytes(), site_key).returncode == 0
    # Swapping it afterwards is refused like the server cluster's.
    attacker_key, attacker_cert = _keypair(tmp_path / "attacker", "attacker")
    (spec.parent / "hosp-a.pem").write_bytes(attacker_cert)
    check = render_spec(spec, "--check", "--diff")
    assert check.exit_code == 1 and "sealing certificate of cluster gke-hosp-a changed" in check.stderr
    assert render_spec(spec).exit_code == 2
    assert _unseal(site_sealed.read_bytes(), attacker_key).returncode != 0


def test_diff_prints_digests_instead_of_ciphertext(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["spec"]["sealing"].__setitem__("scope", "namespace-wide"))  # every value re-sealed
    old = re.findall(r"server\.key: (\S+)", (repo / SEALED).read_text())[0]
    result = render_spec(spec, "--check", "--diff")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if "server.key:" in line]
    assert sorted(line[0] for line in lines) == ["+", "-"]
    assert f"-    server.key: sha256:{hashlib.sha256(old.encode()).hexdigest()[:16]}" in lines
    assert all(re.fullmatch(r"[+-] {4}server\.key: sha256:[0-9a-f]{16}", line) for line in lines), lines


def test_redact_ciphertext_touches_only_encrypted_data() -> None:
    text = (
        "# header\n---\nkind: SealedSecret\nspec:\n  encryptedData:\n    a.key: AgBxyz==\n    b: QQ==\n"
        "  template:\n    data:\n      plain: keep\n---\nkind: ConfigMap\ndata:\n  a.key: AgBxyz==\n"
    )
    out = redact_ciphertext(text)
    digest = hashlib.sha256(b"AgBxyz==").hexdigest()[:16]
    assert out.splitlines()[5] == f"    a.key: sha256:{digest}"
    assert out.splitlines()[6] == f"    b: sha256:{hashlib.sha256(b'QQ==').hexdigest()[:16]}"
    assert out.splitlines()[7:] == text.splitlines()[7:] and out.splitlines()[:5] == text.splitlines()[:5]


def test_fingerprints_read_as_openssl_prints_them(sealing_keypair: tuple[Path, Path]) -> None:
    from fedgen.spec.sealing_certificate import load_certificate

    pem = sealing_keypair[1].read_bytes()
    ours = fingerprint(load_certificate(pem, origin="cert").sha256)
    assert ours == _openssl_style(pem)
    digest = load_certificate(pem, origin="cert").sha256
    assert parse_fingerprint(ours) == parse_fingerprint(ours.lower()) == digest
    assert parse_fingerprint("sha256 Fingerprint=" + ours[len("SHA256:") :]) == digest
    for bad in ("SHA256:AB", "md5:" + ours[7:], ours + ":00"):
        with pytest.raises(InputError):
            parse_fingerprint(bad)


# ------------------------------------------------------------------------------------------- --check read-only


def test_check_creates_nothing(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = write_spec()
    repo = spec.parent.parent
    before = tree_snapshot(tmp_path, exclude=())
    folders = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    for args in ((), ("--state", str(tmp_path / "elsewhere" / "state"))):
        result = render_spec(spec, "--check", *args)
        assert result.exit_code == 1, result.output  # nothing rendered yet: drift
    assert tree_snapshot(tmp_path, exclude=()) == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == folders
    assert not (repo / ".fedgen").exists() and not (tmp_path / "elsewhere").exists()


def test_check_takes_no_lock(rendered: tuple[Path, Path]) -> None:
    import fcntl
    import os

    spec, repo = rendered
    lock = repo / ".fedgen/state/genomics/lock"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a render is running
        held = lock.read_bytes()
        result = render_spec(spec, "--check")
        assert result.exit_code == 0, result.output
        assert render_spec(spec).exit_code == 3  # a render does wait its turn
        assert lock.read_bytes() == held
    finally:
        os.close(fd)


class _ReadOnlyProxy(BaseHTTPRequestHandler):
    """Forwards GET and HEAD to the emulator; any other method gets the 403 a read-only principal gets."""

    upstream = ""
    refused: list[str] = []

    def _forward(self) -> None:
        request = urllib.request.Request(self.upstream + self.path, method=self.command, headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, headers, body = resp.status, resp.headers.items(), resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers.items(), exc.read()
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self) -> None:
        type(self).refused.append(f"{self.command} {self.path}")
        body = json.dumps({"error": {"code": 403, "message": "read-only credential: storage.objects.create/delete denied"}}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = _forward
    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _read_only(gcs: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_ReadOnlyProxy]]:
    """STORAGE_EMULATOR_HOST pointed at a proxy that lets only reads through to the emulator."""
    handler = type("Proxy", (_ReadOnlyProxy,), {"upstream": gcs.url, "refused": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with monkeypatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        try:
            yield handler
        finally:
            server.shutdown()
            server.server_close()


def test_check_needs_only_read_access_to_a_gcs_state(gcs: Emulator, write_spec: SpecWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/fed/genomics"
    spec = write_spec()
    assert render_spec(spec, "--state", location).exit_code == 0  # the operator's render, read-write
    objects = {name: blob.generation for name, blob in gcs.objects(bucket).items()}
    with _read_only(gcs, monkeypatch) as proxy:
        result = render_spec(spec, "--state", location, "--check")
        assert result.exit_code == 0, result.output
        assert proxy.refused == []  # it never even tried to write
        # The proxy does refuse writes: a render (which locks the state) fails through it.
        refused = render_spec(spec, "--state", location)
        assert refused.exit_code == 3 and proxy.refused, refused.output
    assert {name: blob.generation for name, blob in gcs.objects(bucket).items()} == objects


def test_the_policy_keeps_the_committed_ciphertext_it_is_handed(tmp_path: Path) -> None:
    """seal_all reads no repository: the caller hands it each SealedSecret's committed encryptedData. Unchanged
    plaintext, certificate and scope keep it byte for byte; ciphertext the state did not record is sealed anew."""
    from fedgen.seal.crypto import unseal_value
    from fedgen.seal.policy import SecretToSeal, seal_all
    from fedgen.state import StateDocument

    key, cert = _keypair(tmp_path, "controller")
    (tmp_path / "controller.pem").write_bytes(cert)
    secret = SecretToSeal("fl-a", "server-key", {"server.key": b"plaintext"}, tmp_path / "controller.pem", "gke-a", "strict", "tenants/a/sealed-secret.yaml")
    first = seal_all(StateDocument(project="p"), [secret], previous={})
    ciphertext = first.encrypted[("fl-a", "server-key")]
    kept = seal_all(first.document, [secret], previous={secret.repo_path: ciphertext})
    assert kept.encrypted[("fl-a", "server-key")] == ciphertext and kept.document == first.document
    forged = "QUFB" * 100
    resealed = seal_all(first.document, [secret], previous={secret.repo_path: {"server.key": forged}})
    value = resealed.encrypted[("fl-a", "server-key")]["server.key"]
    assert value not in (forged, ciphertext["server.key"])
    assert unseal_value(key.read_bytes(), value, namespace="fl-a", name="server-key", scope="strict") == b"plaintext"
