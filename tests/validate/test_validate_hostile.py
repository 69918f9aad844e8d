"""fedgen validate on a hostile pull request: it reads nothing outside the repository, fetches nothing, runs no
plugin, leaks nothing of its runner, escapes what it quotes, survives bombs, and never ends outside exit
codes 0-3. The planted-defect tests of FG402, FG409 and FG518 are in test_validate_rules.py; these tests
follow the attacks end to end (the CLI, every output format, a real HTTP server) and test the parts alone.
"""

from __future__ import annotations

import bz2
import gzip
import http.server
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from fedgen.errors import InputError
from fedgen.validate import keyscan
from fedgen.validate.engine import validate
from tests.validate.support import CLUSTER, HAND_EDIT, SERVER, SPEC, TENANT, edit, fresh, pem_key, restamp, rsa_key

OVERLAY = f"tenants/{TENANT}/overlays/{CLUSTER}"
FEDGEN = [sys.executable, "-m", "fedgen"]
CANARY = "fedgen-canary-0c5e1a"


def _kustomization(repo: Path, folder: str, change: Callable[[dict[str, Any]], None]) -> None:
    edit(repo, f"{folder}/kustomization.yaml", lambda docs: change(docs[0]))
    restamp(repo)


def _line_of(repo: Path, path: str, needle: str) -> int:
    return next(i for i, line in enumerate((repo / path).read_text().splitlines(), 1) if needle in line)


def _cli(repo: Path, fmt: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEDGEN, "validate", "--repo", str(repo), "--format", fmt], capture_output=True, text=True, env=env, timeout=600, check=False)


# ------------------------------------------------------------------------------- the runner's secrets


def test_generator_reading_the_runner_environment_is_refused_and_nothing_leaks(tmp_path: Path) -> None:
    """The attack of issue 14: a configMapGenerator reads /proc/self/environ (where the CI runner keeps its
    tokens), replacements copy it into a Service's name, and every finding quoting the Service would print it.
    Now the kustomization is refused at the entry's line, the root is not built, and the runner's environment
    (a canary here) appears in no output format."""
    repo = fresh("ranged", tmp_path)
    (repo / OVERLAY / "leak.yaml").write_text(
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: leak\n  namespace: {TENANT}\nspec:\n  type: LoadBalancer\n  ports:\n  - name: tcp-x\n    port: 1\n"
    )

    def attack(k: dict[str, Any]) -> None:
        k["resources"].append("leak.yaml")
        k["configMapGenerator"] = [{"name": "env", "namespace": TENANT, "files": ["e=/proc/self/environ"], "options": {"disableNameSuffixHash": True}}]
        k["replacements"] = [
            {
                "source": {"kind": "ConfigMap", "name": "env", "fieldPath": "data.e"},
                "targets": [{"select": {"kind": "Service", "name": "leak"}, "fieldPaths": ["metadata.name"]}],
            }
        ]

    _kustomization(repo, OVERLAY, attack)
    env = {**os.environ, "FEDGEN_TEST_CANARY": CANARY}
    outputs = {fmt: _cli(repo, fmt, env) for fmt in ("text", "json", "sarif")}
    for fmt, proc in outputs.items():
        assert proc.returncode == 1, (fmt, proc.stdout, proc.stderr)
        assert CANARY not in proc.stdout + proc.stderr, fmt
    findings = json.loads(outputs["json"].stdout)["findings"]
    [refused] = [f for f in findings if f["rule"] == "FG518"]
    assert refused["path"] == f"{OVERLAY}/kustomization.yaml"
    assert refused["line"] == _line_of(repo, refused["path"], "/proc/self/environ")
    assert "/proc/self/environ" in refused["message"] and "absolute path" in refused["message"]
    # the root is not built: nothing is reported on its objects (the re-render names the hand edit itself)
    assert {f["rule"] for f in findings} - HAND_EDIT == {"FG518"}


def test_the_sandbox_hands_a_tool_nothing_of_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a sandboxed tool sees: a fixed environment without the runner's variables, a temporary HOME that
    is removed afterwards, proxies to a dead port and git refusing every protocol."""
    from fedgen.validate.sandbox import DEAD_PROXY, run_sandboxed

    monkeypatch.setenv("FEDGEN_TEST_CANARY", CANARY)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/secret/creds.json")
    ran = run_sandboxed([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"], cwd=Path.cwd(), timeout=60, max_stdout=1 << 20)
    seen = json.loads(ran.stdout)
    assert CANARY not in ran.stdout.decode() and "GOOGLE_APPLICATION_CREDENTIALS" not in seen
    assert seen["PATH"] == "/usr/bin:/bin" and seen["HTTPS_PROXY"] == DEAD_PROXY and seen["GIT_CONFIG_VALUE_0"] == "never"
    assert Path(seen["HOME"]).name.startswith("fedgen-sandbox-") and not Path(seen["HOME"]).exists()


def test_the_sandbox_stops_a_tool_at_its_timeout_and_output_cap() -> None:
    from fedgen.validate.sandbox import run_sandboxed

    slow = run_sandboxed([sys.executable, "-c", "import time; time.sleep(60)"], cwd=Path.cwd(), timeout=1, max_stdout=1 << 20)
    assert slow.timed_out and slow.returncode is None
    loud = run_sandboxed([sys.executable, "-c", "import sys; sys.stdout.write('x' * (1 << 22))"], cwd=Path.cwd(), timeout=60, max_stdout=1 << 20)
    assert loud.too_large and loud.returncode is None and len(loud.stdout) <= 1 << 20


def test_specs_certificates_ledgers_and_allowlists_outside_the_repo_are_not_read(tmp_path: Path) -> None:
    """Besides kustomizations, a PR controls which spec a ledger names, which certificates that spec names,
    and what the ledger and allowlist files are: nothing of it leads validate out of the repository."""
    repo = fresh("ranged", tmp_path)
    edit(repo, SPEC, lambda docs: docs[0]["spec"]["sealing"].__setitem__("certificate", "/etc/ssl/certs/ca-certificates.crt"))
    (repo / ".fedgen/owned/outside.json").symlink_to("/etc/hostname")
    ledger = json.loads((repo / ".fedgen/owned/genomics.json").read_text())
    (repo / ".fedgen/owned/other.json").write_text(json.dumps({**ledger, "federation": "other", "spec": "../../../etc/hostname", "files": {}}))
    report = validate(repo=repo)
    found = {(f.rule, f.path): f.message for f in report.findings}
    assert "sealing certificate" in found[("FG106", SPEC)] and "absolute path" in found[("FG106", SPEC)]
    assert "symbolic link" in found[("FG104", ".fedgen/owned/outside.json")]
    assert any(rule in ("FG105", "FG106") and "../../../etc/hostname" in message for (rule, _), message in found.items())
    (repo / ".fedgen/allowlist.yaml").symlink_to("/etc/hostname")
    with pytest.raises(InputError, match="symbolic link"):
        validate(repo=repo)


def test_listing_the_repository_starts_no_program_its_git_config_names(tmp_path: Path) -> None:
    """A checkout validate did not make (an extracted archive, a shared folder) may carry a .git/config whose
    core.fsmonitor is a command: git would run it on reading the index; validate's listing does not."""
    from fedgen.validate.scan import list_files

    marker = tmp_path / "ran"
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.yaml").write_text("a: 1\n")
    subprocess.run(["git", "-C", str(repo), "add", "a.yaml"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", f"touch {marker}; false"], check=True)
    subprocess.run(["git", "-C", str(repo), "ls-files"], check=True, capture_output=True)
    assert marker.exists()  # git itself runs it
    marker.unlink()
    assert list_files(repo) == ["a.yaml"]
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- network


class _Server:
    """A local HTTP server that records every request (and serves a valid object, so a fetch would work)."""

    def __init__(self) -> None:
        requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                requests.append(self.path)
                body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetched\n  namespace: x\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.requests = requests
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/x.yaml"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        urlopen_works = __import__("urllib.request").request.urlopen(self.url.replace("x.yaml", "probe"), timeout=10).status == 200
        assert urlopen_works and self.requests == ["/probe"]  # the server answers: a silent request would be seen
        self.requests.clear()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as running:
        yield running


def test_a_remote_resource_is_reported_and_never_fetched(tmp_path: Path, server: _Server) -> None:
    repo = fresh("ranged", tmp_path)
    _kustomization(repo, OVERLAY, lambda k: k["resources"].append(server.url))
    report = validate(repo=repo)
    [finding] = [f for f in report.findings if f.rule == "FG518"]
    assert finding.line == _line_of(repo, finding.path, server.url) and server.url in finding.message
    assert server.requests == []


def test_kustomize_itself_has_no_network(tmp_path: Path, server: _Server) -> None:
    """The second line, with the kustomization guard out of the way: kubectl kustomize runs in a private network
    namespace, so even a loopback URL (which Go never sends to a proxy) cannot be reached."""
    from fedgen.validate.collect.kustomize import kustomize_output
    from fedgen.validate.sandbox import network_isolation

    assert network_isolation(), "this machine must let the current user make a network namespace (unshare --net)"
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "kustomization.yaml").write_text(f"resources:\n- {server.url}\n")
    out, error = kustomize_output(tmp_path, "root", True)
    assert out == b"" and error and server.url.rsplit("/", 1)[0] in error
    assert server.requests == []


def test_without_a_network_namespace_requests_go_to_a_dead_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fedgen.validate import sandbox
    from fedgen.validate.collect import kustomize

    monkeypatch.setattr(kustomize, "run_sandboxed", lambda *a, **kw: sandbox.run_sandboxed(*a, **kw, isolate=False))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "kustomization.yaml").write_text("resources:\n- https://fedgen-test.example/x.yaml\n")
    out, error = kustomize.kustomize_output(tmp_path, "root", True)
    assert out == b"" and error and "proxyconnect" in error and sandbox.DEAD_PROXY.removeprefix("http://") in error


# --------------------------------------------------------------------------------- quoting hostile text


def test_what_findings_quote_is_escaped_and_capped_in_every_format(tmp_path: Path) -> None:
    """A file name and a kustomization entry with ANSI escapes, a newline forging a finding line and a
    right-to-left override: shown escaped in every format, the long one capped."""
    repo = fresh("ranged", tmp_path)
    hostile = "docs/evil\x1b[2J\x1b[31mname\nFG000 error: forged line\u202e.pem"
    (repo / hostile).parent.mkdir(parents=True, exist_ok=True)
    (repo / hostile).write_bytes(pem_key(rsa_key()))
    long_entry = "http://example.com/" + "\x1b[31m" * 50 + "a" * 1000
    _kustomization(repo, OVERLAY, lambda k: k["resources"].append(long_entry))
    report = validate(repo=repo)
    from fedgen.report import FORMATS

    for fmt, render in FORMATS.items():
        text = render(report)
        assert "\x1b" not in text and "\u202e" not in text, fmt
        assert not any(line.startswith("FG000") for line in text.splitlines()), fmt
    for finding in json.loads(FORMATS["json"](report))["findings"]:
        assert "\n" not in finding["path"] + finding["message"]
    [key] = [f for f in report.findings if f.rule == "FG402"]
    assert key.path == "docs/evil\\x1b[2J\\x1b[31mname\\nFG000 error: forged line\\u202e.pem"
    [url] = [f for f in report.findings if f.rule == "FG518"]
    assert "\\x1b[31m" in url.message and len(url.message) == 500 and url.message.endswith("\u2026")


# ------------------------------------------------------------------------------------------- nesting


def test_deep_nesting_is_a_finding_never_a_traceback(tmp_path: Path) -> None:
    """Today's RecursionError (exit 70): a JSON file of 100000 '[' anywhere, a deep YAML flow in a sync root,
    a deep ledger. Now: findings, exit 1."""
    repo = fresh("ranged", tmp_path)
    (repo / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (repo / f"clusters/{CLUSTER}/deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (repo / ".fedgen/owned/deep.json").write_text('{"files": ' + "[" * 100_000 + "]" * 100_000 + "}")
    proc = _cli(repo, "json")
    assert proc.returncode == 1, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    by_rule = {(f["rule"], f["path"]) for f in findings}
    assert ("FG409", "deep.json") in by_rule
    assert ("FG409", f"clusters/{CLUSTER}/deep.yaml") in by_rule and ("FG515", f"clusters/{CLUSTER}/deep.yaml") in by_rule
    assert ("FG104", ".fedgen/owned/deep.json") in by_rule
    assert all("nested deeper" in f["message"] for f in findings if f["rule"] in ("FG104", "FG409", "FG515"))


def test_a_deep_spec_is_one_positioned_line_and_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    (tmp_path / "repo").mkdir()
    spec.write_text("apiVersion: fedgen/v1\nkind: Federation\nmetadata:\n  name: x\nspec: " + "[" * 100_000 + "]" * 100_000 + "\n")
    proc = subprocess.run([*FEDGEN, "render", str(spec), "--repo", str(tmp_path / "repo"), "--check"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"{spec}:5:") and "nested deeper than" in line


@pytest.mark.parametrize("reader", ["state", "ledger", "journal", "allowlist", "fed_server.json", "enrollment member"])
def test_every_reader_caps_nesting(reader: str, tmp_path: Path) -> None:
    from fedgen.errors import InputError
    from fedgen.untrusted import TooDeep

    deep_json = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    if reader == "state":
        from fedgen.state.document import StateDocument

        with pytest.raises(InputError, match="nested deeper than"):
            StateDocument.from_bytes(deep_json.encode(), "state.json")
    elif reader == "ledger":
        from fedgen.ledger import read_ledgers

        (tmp_path / ".fedgen/owned").mkdir(parents=True)
        (tmp_path / ".fedgen/owned/x.json").write_text(deep_json)
        with pytest.raises(InputError, match="not a fedgen ownership record"):
            read_ledgers(tmp_path)
    elif reader == "journal":
        from fedgen.errors import ExternalError
        from fedgen.write.apply import _roll_forward

        (tmp_path / ".fedgen").mkdir()
        (tmp_path / ".fedgen/journal.json").write_text(deep_json)
        with pytest.raises(ExternalError, match="nested deeper than"):
            _roll_forward(tmp_path)
    elif reader == "allowlist":
        from fedgen.validate.allowlist import parse_allowlist
        from fedgen.validate.rules import REGISTRY

        with pytest.raises(InputError, match="nested deeper than"):
            parse_allowlist("allow: " + "[" * 100_000 + "]" * 100_000, origin=".fedgen/allowlist.yaml", registry=REGISTRY)
    elif reader == "fed_server.json":
        from fedgen.validate.nvflare import parse_fed_server

        fields, error = parse_fed_server(deep_json)
        assert fields == {} and error and "nested deeper than" in error
    else:
        from fedgen.enroll.zips import json_object

        with pytest.raises(Exception, match="nested deeper than") as caught:
            json_object(deep_json.encode(), "signed.json", "x.zip")
        assert not isinstance(caught.value, (RecursionError, TooDeep))  # the reader's own error, one line


# ----------------------------------------------------------------------------------------- key scanning


def _der(key: Any, syntax: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, syntax, serialization.NoEncryption())


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _kinds(scan: keyscan.FileScan) -> list[tuple[str, str, str | None]]:
    return [(k.form, k.kind, k.member) for k in scan.keys]


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda: _der(rsa_key(), serialization.PrivateFormat.TraditionalOpenSSL), "RSA (traditional)"),
        (lambda: _der(rsa_key(), serialization.PrivateFormat.PKCS8), "RSA (PKCS#8)"),
        (lambda: _der(ec.generate_private_key(ec.SECP384R1()), serialization.PrivateFormat.TraditionalOpenSSL), "EC (traditional)"),
        (lambda: _der(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8), "EC (PKCS#8)"),
        (lambda: _der(ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8), "Ed25519 (PKCS#8)"),
    ],
)
def test_der_keys_are_found_in_binary_files(make: Callable[[], bytes], kind: str) -> None:
    data = os.urandom(3000) + make() + os.urandom(3000)
    assert _kinds(keyscan.scan_bytes(data)) == [("DER", kind, None)]


def test_pem_keys_are_found_in_binary_files_and_escaped_in_json() -> None:
    pem = pem_key(rsa_key())
    assert _kinds(keyscan.scan_bytes(b"\0\x01binary\0" + pem + b"\0")) == [("PEM", "PKCS#8", None)]
    escaped = json.dumps({"key": pem.decode()}).encode()
    assert _kinds(keyscan.scan_bytes(escaped)) == [("PEM", "PKCS#8", None)]
    traditional = rsa_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    assert _kinds(keyscan.scan_bytes(b"\0" + traditional)) == [("PEM", "RSA", None)]


def test_no_key_no_finding() -> None:
    prose = b"Keys start with -----BEGIN PRIVATE KEY----- and never belong here.\n" + bytes(range(256)) * 64
    assert keyscan.scan_bytes(prose) == keyscan.FileScan()
    assert keyscan.scan_bytes(os.urandom(1 << 20)).keys == ()
    assert keyscan.scan_bytes(_der(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.TraditionalOpenSSL)[:-5]).keys == ()


def test_keys_anywhere_in_a_large_file_are_found_by_streaming(tmp_path: Path) -> None:
    """A key straddling the border of two read windows, and one past 8 MiB (which used to be skipped)."""
    der = _der(rsa_key(), serialization.PrivateFormat.TraditionalOpenSSL)
    pem = pem_key(rsa_key())
    before_der = b"\n" * (keyscan.WINDOW - 500)
    before_pem = before_der + der + os.urandom(9 * 1024 * 1024)
    path = tmp_path / "big.bin"
    path.write_bytes(before_pem + pem)
    scan = keyscan.scan_path(path)
    assert [(k.form, k.line) for k in scan.keys] == [("DER", before_der.count(b"\n") + 1), ("PEM", before_pem.count(b"\n") + 1)]
    assert scan.uninspectable is None


@pytest.mark.parametrize(
    "wrap, member",
    [
        (lambda k: gzip.compress(k), ""),
        (lambda k: bz2.compress(k), ""),
        (lambda k: lzma.compress(k), ""),
        (lambda k: _tar({"kit/server.key": k}), "kit/server.key"),
        (lambda k: _tar({"kit/server.key": k}, "w:gz"), "kit/server.key"),
        (lambda k: _zip({"a/site.key": k}), "a/site.key"),
        (lambda k: _zip({"a/site.key": k}, zipfile.ZIP_STORED), "a/site.key"),
        (lambda k: b"prepended bytes " + _zip({"site.key": k}), "site.key"),
        (lambda k: _tar({"inner.zip": _zip({"deep/site.key": gzip.compress(k)})}, "w:xz"), "inner.zip/deep/site.key"),
    ],
)
def test_keys_inside_archives_are_found(wrap: Callable[[bytes], bytes], member: str) -> None:
    der = _der(rsa_key(), serialization.PrivateFormat.PKCS8)
    scan = keyscan.scan_bytes(wrap(der))
    assert _kinds(scan) == [("DER", "RSA (PKCS#8)", member)] and scan.uninspectable is None
    assert "inside" in scan.keys[0].describe()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: gzip.compress(bytes(1 << 20)) * 100, "more than 64 MiB decompressed"),
        (lambda: _zip({f"f{i}": b"" for i in range(keyscan.MAX_MEMBERS + 1)}, zipfile.ZIP_STORED), "announces"),
        (lambda: _tar({f"f{i}": b"" for i in range(keyscan.MAX_MEMBERS + 1)}), f"more than {keyscan.MAX_MEMBERS} members"),
        (lambda: _nest_gzip(b"x", keyscan.MAX_ARCHIVE_DEPTH + 1), "nested deeper"),
        (lambda: gzip.compress(os.urandom(100_000))[:50_000], "damaged"),
    ],
)
def test_archive_bombs_are_uninspectable_not_crashes(make: Callable[[], bytes], reason: str) -> None:
    scan = keyscan.scan_bytes(make())
    assert scan.uninspectable and reason in scan.uninspectable


def _nest_gzip(data: bytes, times: int) -> bytes:
    for _ in range(times):
        data = gzip.compress(data)
    return data


def test_a_key_found_before_a_bomb_is_still_reported() -> None:
    pem = pem_key(rsa_key())
    scan = keyscan.scan_bytes(_tar({"a.key": pem, "bomb.gz": gzip.compress(bytes(1 << 20)) * 100}))
    assert _kinds(scan) == [("PEM", "PKCS#8", "a.key")] and scan.uninspectable and "decompressed" in scan.uninspectable


# --------------------------------------------------------------------------------------- path checks


@pytest.mark.parametrize(
    "entry",
    [
        "https://example.com/x.yaml",
        "http://127.0.0.1:8080/x.yaml",
        "git::https://github.com/a/b//c?ref=v1",
        "github.com/org/repo/base",
        "git@github.com:org/repo.git",
        "ssh://git@example.com/repo",
        "gh:org/repo",
        "file:///etc",
        "base?ref=main",
        "example.com/org/repo",
        "gitlab.com/org/repo//base",
        "user@host:repo",
    ],
)
def test_remote_looking_entries_are_refused(entry: str) -> None:
    from fedgen.validate.kustomization import _remote

    assert _remote(entry)


@pytest.mark.parametrize("entry", ["base", "../../tenants/fl-1/overlays/acp-dev", "istio-ingress/fl-1", "service.yaml", "v1.2/base", "./x.yaml"])
def test_local_entries_are_not_remote(entry: str) -> None:
    from fedgen.validate.kustomization import _remote

    assert not _remote(entry)


def test_an_inline_patch_is_not_a_path_and_a_clean_render_is_not_refused(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    patch = f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {SERVER}\n  namespace: {TENANT}\n  labels:\n    patched: inline\n"
    _kustomization(repo, OVERLAY, lambda k: k.__setitem__("patchesStrategicMerge", [patch]))
    report = validate(repo=repo)
    assert {f.rule for f in report.findings} - HAND_EDIT == set()  # the re-render names the hand edit only
    service = next(o for o in report_objects(repo) if o["kind"] == "Service" and o["metadata"]["name"] == SERVER)
    assert service["metadata"]["labels"]["patched"] == "inline"


def report_objects(repo: Path) -> list[dict[str, Any]]:
    from fedgen.validate.collect.collector import collect_model

    model = collect_model(repo, kubernetes_version="1.35")
    return [dict(o.data) for o in model.objects()]
