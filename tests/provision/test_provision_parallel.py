"""Parallel certificate issuance (fedgen.provision.runner, worker processes) against the real NVFlare library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fedgen.errors import ExternalError, InputError
from fedgen.provision import ProvisionResult, provision, runner
from fedgen.provision.roster import Roster
from fedgen.spec.model import Federation
from fedgen.state.document import StateDocument
from tests.support import ADMIN, HOSTS, make_federation

SITES = tuple((f"site{i}", "org_b" if i % 2 else "org_c") for i in range(1, 8))
ADMINS = ((ADMIN, "org_a", "project_admin"), ("lead@example.com", "org_b", "lead"))
NAMES = ("server1", *(name for name, _ in SITES), *(name for name, _, _ in ADMINS))
# Kit files that hold a participant's own key material; everything else must not depend on how it was issued.
KEY_MATERIAL = ("startup/server.crt", "startup/server.key", "startup/client.crt", "startup/client.key", "startup/rootCA.pem")


def federation(**kwargs: Any) -> Federation:
    return make_federation(sites=kwargs.pop("sites", SITES), admins=kwargs.pop("admins", ADMINS), **kwargs)


@pytest.fixture(scope="module")
def parallel() -> ProvisionResult:
    return provision(federation(), StateDocument(), workers=3)


@pytest.fixture(scope="module")
def serial() -> ProvisionResult:
    return provision(federation(), StateDocument(), workers=1)


def root_of(document: StateDocument) -> x509.Certificate:
    return x509.load_pem_x509_certificate(document.nvflare_cert["root_cert"].encode())


def assert_valid_state(document: StateDocument, names: tuple[str, ...]) -> None:
    """Every participant's certificate is issued by the root, names itself, and matches its private key."""
    root = root_of(document)
    assert set(document.nvflare_cert) == {"root_cert", "root_pri_key", *names}
    for name in names:
        entry = document.nvflare_cert[name]
        cert = x509.load_pem_x509_certificate(entry["cert"].encode())
        cert.verify_directly_issued_by(root)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        key = serialization.load_pem_private_key(entry["pri_key"].encode(), password=None)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers(), name  # type: ignore[union-attr]
        assert key.key_size == 2048  # type: ignore[union-attr]


def test_parallel_and_serial_issue_valid_certificates_chained_to_one_root(parallel: ProvisionResult, serial: ProvisionResult) -> None:
    for result in (parallel, serial):
        assert result.issued == tuple(sorted(NAMES))
        assert set(result.kits) == set(NAMES)
        assert_valid_state(result.document, NAMES)
        root_pem = result.document.nvflare_cert["root_cert"].encode()
        for name, kit in result.kits.items():
            assert kit["startup/rootCA.pem"].data == root_pem, name
            crt = "startup/server.crt" if name == "server1" else "startup/client.crt"
            assert kit[crt].data.decode() == result.document.nvflare_cert[name]["cert"], name
        assert result.document.participants == provision(federation(), result.document, kits_for=()).document.participants
    # Same federation, two issuances: different keys, the same kits otherwise, file for file.
    for name in NAMES:
        p, s = parallel.kits[name], serial.kits[name]
        assert list(p) == list(s), name
        for path in p:
            assert p[path].mode == s[path].mode, (name, path)
            if path not in KEY_MATERIAL:
                assert p[path].data == s[path].data, (name, path)
    san = x509.load_pem_x509_certificate(parallel.kits["server1"]["startup/server.crt"].data).extensions
    assert san.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == list(HOSTS)
    role = x509.load_pem_x509_certificate(parallel.document.nvflare_cert["lead@example.com"]["cert"].encode())
    assert [a.value for a in role.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)] == ["lead"]


def test_kits_are_a_function_of_the_state(parallel: ProvisionResult) -> None:
    """From the state a parallel run left, two provisions (serial and parallel) give byte-identical kits."""
    again_serial = provision(federation(), parallel.document, workers=1)
    again_parallel = provision(federation(), parallel.document, workers=3)
    for again in (again_serial, again_parallel):
        assert again.issued == ()
        assert again.document.to_bytes() == parallel.document.to_bytes()
        assert again.kits == parallel.kits


def test_parallel_incremental_issue_keeps_every_other_entry(parallel: ProvisionResult) -> None:
    extra = tuple((f"new{i}", "org_d") for i in range(5))
    fed = federation(sites=SITES + extra, host_names=("fl3.example.com",))
    result = provision(fed, parallel.document, kits_for=["server1"], workers=2)
    # The host names changed: the server is re-issued first, then the new sites in the workers.
    assert result.issued == tuple(sorted(["server1", *(name for name, _ in extra)]))
    assert set(result.kits) == {"server1"}
    assert_valid_state(result.document, (*NAMES, *(name for name, _ in extra)))
    for key, value in parallel.document.nvflare_cert.items():
        if key != "server1":
            assert result.document.nvflare_cert[key] == value, key
    crt = x509.load_pem_x509_certificate(result.kits["server1"]["startup/server.crt"].data)
    assert crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["fl3.example.com"]
    # And the server kit from that state is the same through either path.
    assert provision(fed, result.document, kits_for=["server1"], workers=1).kits == result.kits


def test_worker_count() -> None:
    assert runner.worker_count(1, 500) == 1
    assert runner.worker_count(4, 2) == 2  # never more workers than certificates
    assert runner.worker_count(3, 0) == 1
    assert runner.worker_count(None, runner.MIN_PER_WORKER - 1) == 1  # a small batch stays in-process
    assert 1 <= runner.worker_count(None, 10_000) <= runner.MAX_WORKERS
    with pytest.raises(InputError):
        runner.worker_count(0, 10)
    assert [len(g) for g in runner.split([str(i) for i in range(10)], 3)] == [4, 3, 3]
    assert sum(runner.split([str(i) for i in range(10)], 3), []) == [str(i) for i in range(10)]


def test_worker_count_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runner.WORKERS_ENV, "2")
    assert runner.worker_count(None, 10) == 2
    monkeypatch.setenv(runner.WORKERS_ENV, "two")
    with pytest.raises(InputError, match=runner.WORKERS_ENV):
        runner.worker_count(None, 10)


def test_worker_failure_is_one_external_error() -> None:
    # A name NVFlare refuses (and the spec loader too: given directly), in a worker's group: the worker's
    # one-line reason reaches the caller.
    fed = federation(sites=(*SITES, ("site8", "org_b")))
    fed = replace(fed, sites=(*fed.sites[:-1], replace(fed.sites[-1], name="bad name!")))
    with pytest.raises(ExternalError) as info:
        provision(fed, StateDocument(), kits_for=(), workers=2)
    assert str(info.value).startswith("nvflare provisioning failed: ")
    assert "bad name!" in str(info.value)
    assert "\n" not in str(info.value)


def test_worker_stops_and_cleans_up_when_its_caller_is_gone(parallel: ProvisionResult, tmp_path: Path) -> None:
    """Closing the worker's stdin (what the caller's death does) stops it before it finishes its group."""
    many = [f"w{i}" for i in range(60)]
    fed = federation(sites=tuple((n, "org_b") for n in many))
    base = {k: parallel.document.nvflare_cert[k] for k in ("root_cert", "root_pri_key", "server1")}
    request = {"roster": Roster.of(fed).to_json(), "group": many, "base": base}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-m", "fedgen.provision.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()
    # Wait until the worker has started provisioning (its private root exists), then go away.
    for _ in range(1200):
        if any(scratch.iterdir()):
            break
        assert proc.poll() is None
        time.sleep(0.05)
    proc.stdin.close()
    assert proc.wait(timeout=60) == 1  # stopped by its watcher, not finished (0)
    assert proc.stdout.read() == b""
    proc.stdout.close()
    assert list(scratch.iterdir()) == []


def _ask_worker(parallel: ProvisionResult, **extra: Any) -> subprocess.Popen[bytes]:
    """A worker process asked to issue site1 and site2 (stdin left open: its end would mean the caller is gone)."""
    base = {k: parallel.document.nvflare_cert[k] for k in ("root_cert", "root_pri_key", "server1")}
    request = {"roster": Roster.of(federation()).to_json(), "group": ["site1", "site2"], "base": base, **extra}
    proc = subprocess.Popen([sys.executable, "-m", "fedgen.provision.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()
    return proc


def _assert_entries(reply: bytes, parallel: ProvisionResult) -> None:
    entries = json.loads(reply)["entries"]
    assert sorted(entries) == ["site1", "site2"]
    root = root_of(parallel.document)
    for entry in entries.values():
        x509.load_pem_x509_certificate(entry["cert"].encode()).verify_directly_issued_by(root)


def test_worker_replies_with_entries_and_exits_with_stdin_still_open(parallel: ProvisionResult) -> None:
    proc = _ask_worker(parallel)
    assert proc.stdin is not None and proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(timeout=60) == 0  # done with its reply, whether or not the caller ever closes stdin
    proc.stdin.close()
    proc.stdout.close()
    _assert_entries(out, parallel)


def test_worker_that_replied_exits_0_when_its_stdin_ends_at_once(parallel: ProvisionResult) -> None:
    """The caller's normal goodbye: it closes stdin the moment the reply has ended. The worker's watcher sees
    the end of its input while the worker itself exits; either way the status is 0 (it replied)."""
    proc = _ask_worker(parallel)
    assert proc.stdin is not None and proc.stdout is not None
    out = proc.stdout.read()
    proc.stdin.close()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    _assert_entries(out, parallel)


def test_worker_reports_progress_per_batch(parallel: ProvisionResult) -> None:
    proc = _ask_worker(parallel, batch=1)
    assert proc.stdin is not None and proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    assert proc.wait(timeout=60) == 0
    proc.stdin.close()
    proc.stdout.close()
    assert [json.loads(line) for line in lines[:-1]] == [{"progress": 1}, {"progress": 2}]
    _assert_entries(lines[-1], parallel)


def test_progress_is_reported_as_certificates_are_issued(parallel: ProvisionResult) -> None:
    """Serial and parallel: (0, total) first, (total, total) last, never backwards; total is what is issued."""
    extra = tuple((f"p{i}", "org_d") for i in range(34))  # two workers: 17 each, issued 16 + 1
    seen: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        seen.append((done, total))

    for workers in (1, 2):
        seen.clear()
        result = provision(federation(sites=SITES + extra), parallel.document, kits_for=(), workers=workers, progress=record)
        total = len(result.issued)
        assert total == len(extra)
        assert seen[0] == (0, total) and seen[-1] == (total, total), (workers, seen)
        assert all(t == total for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen), (workers, seen)
        if workers == 2:
            assert len(seen) > 3, seen  # the workers reported batches, not only their end
    seen.clear()
    assert provision(federation(), parallel.document, kits_for=(), progress=record).issued == ()
    assert seen == []
