"""Parallel certificate issuance (fedgen.provision.core, worker processes) against the real NVFlare library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from fedgen.errors import ExternalError, InputError
from fedgen.provision import ProvisionResult, core, provision
from fedgen.spec.model import Admin, Site
from fedgen.state.document import StateDocument
from tests.test_provision import ADMIN, HOSTS, make_federation

SITES = tuple(Site(f"site{i}", "org_b" if i % 2 else "org_c") for i in range(1, 8))
ADMINS = (Admin(ADMIN, "org_a", "project_admin"), Admin("lead@example.com", "org_b", "lead"))
NAMES = ("server1", *(s.name for s in SITES), *(a.name for a in ADMINS))
# Kit files that hold a participant's own key material; everything else must not depend on how it was issued.
KEY_MATERIAL = ("startup/server.crt", "startup/server.key", "startup/client.crt", "startup/client.key", "startup/rootCA.pem")


def federation(**kwargs):
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


def test_parallel_and_serial_issue_valid_certificates_chained_to_one_root(
    parallel: ProvisionResult, serial: ProvisionResult
) -> None:
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
    extra = tuple(Site(f"new{i}", "org_d") for i in range(5))
    fed = federation(sites=SITES + extra, host_names=("fl3.example.com",))
    result = provision(fed, parallel.document, kits_for=["server1"], workers=2)
    # The host names changed: the server is re-issued first, then the new sites in the workers.
    assert result.issued == tuple(sorted(["server1", *(s.name for s in extra)]))
    assert set(result.kits) == {"server1"}
    assert_valid_state(result.document, (*NAMES, *(s.name for s in extra)))
    for key, value in parallel.document.nvflare_cert.items():
        if key != "server1":
            assert result.document.nvflare_cert[key] == value, key
    crt = x509.load_pem_x509_certificate(result.kits["server1"]["startup/server.crt"].data)
    assert crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["fl3.example.com"]
    # And the server kit from that state is the same through either path.
    assert provision(fed, result.document, kits_for=["server1"], workers=1).kits == result.kits


def test_worker_count() -> None:
    assert core._worker_count(1, 500) == 1
    assert core._worker_count(4, 2) == 2  # never more workers than certificates
    assert core._worker_count(3, 0) == 1
    assert core._worker_count(None, core.MIN_PER_WORKER - 1) == 1  # a small batch stays in-process
    assert 1 <= core._worker_count(None, 10_000) <= core.MAX_WORKERS
    with pytest.raises(InputError):
        core._worker_count(0, 10)
    assert [len(g) for g in core._split([str(i) for i in range(10)], 3)] == [4, 3, 3]
    assert sum(core._split([str(i) for i in range(10)], 3), []) == [str(i) for i in range(10)]


def test_worker_count_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(core.WORKERS_ENV, "2")
    assert core._worker_count(None, 10) == 2
    monkeypatch.setenv(core.WORKERS_ENV, "two")
    with pytest.raises(InputError, match=core.WORKERS_ENV):
        core._worker_count(None, 10)


def test_worker_failure_is_one_external_error() -> None:
    # A name NVFlare refuses, in a worker's group: the worker's one-line reason reaches the caller.
    fed = federation(sites=(*SITES, Site("bad name!", "org_b")))
    with pytest.raises(ExternalError) as info:
        provision(fed, StateDocument(), kits_for=(), workers=2)
    assert str(info.value).startswith("nvflare provisioning failed: ")
    assert "bad name!" in str(info.value)
    assert "\n" not in str(info.value)


def test_worker_stops_and_cleans_up_when_its_caller_is_gone(parallel: ProvisionResult, tmp_path: Path) -> None:
    """Closing the worker's stdin (what the caller's death does) stops it before it finishes its group."""
    many = [f"w{i}" for i in range(60)]
    fed = federation(sites=tuple(Site(n, "org_b") for n in many))
    base = {k: parallel.document.nvflare_cert[k] for k in ("root_cert", "root_pri_key", "server1")}
    request = {"roster": core._roster_json(core._Roster.of(fed)), "group": many, "base": base}
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedgen.provision.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
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


def test_worker_replies_with_entries(parallel: ProvisionResult) -> None:
    fed = federation()
    base = {k: parallel.document.nvflare_cert[k] for k in ("root_cert", "root_pri_key", "server1")}
    request = {"roster": core._roster_json(core._Roster.of(fed)), "group": ["site1", "site2"], "base": base}
    proc = subprocess.Popen([sys.executable, "-m", "fedgen.provision.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request).encode() + b"\n")
    proc.stdin.flush()  # and keep it open: its end would mean that the caller is gone
    out = proc.stdout.read()
    proc.stdin.close()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    entries = json.loads(out)["entries"]
    assert sorted(entries) == ["site1", "site2"]
    root = root_of(parallel.document)
    for entry in entries.values():
        x509.load_pem_x509_certificate(entry["cert"].encode()).verify_directly_issued_by(root)
