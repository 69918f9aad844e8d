"""State on Cloud Storage (`--state gs://bucket/prefix`) against the real fake-gcs-server."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedgen.cli import main
from fedgen.errors import ExternalError
from fedgen.state import StateDocument
from fedgen.state.gcs import LEASE_SECONDS, RENEW_SECONDS, GcsStore
from fedgen.state.local import LocalStore
from fedgen.state.unlock import force_unlock
from tests.gcs_emulator import Emulator, ReadOnlyProxy
from tests.support import refusing_port, tree_snapshot

SpecWriter = Callable[..., Path]


def _render(spec: Path, state: str) -> Any:
    return CliRunner().invoke(main, ["render", str(spec), "--repo", str(spec.parent.parent), "--state", state])


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_render_round_trip_on_gcs_is_byte_identical(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    repo = spec.parent.parent
    location = f"gs://{bucket}/fed/genomics"
    first = _render(spec, location)
    assert first.exit_code == 0, first.output
    objects = gcs.objects(bucket)
    assert sorted(objects) == ["fed/genomics/state.json"]  # the lock is gone after the render
    generation = objects["fed/genomics/state.json"].generation
    assert json.loads(gcs.read(bucket, "fed/genomics/state.json"))["project"] == "genomics"
    assert not (repo / ".fedgen/state").exists()  # nothing of the state landed locally
    tree = tree_snapshot(repo)
    again = _render(spec, location)
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 0 deleted" in again.output
    assert tree_snapshot(repo) == tree
    # Nothing changed, so nothing was saved: same generation.
    assert gcs.objects(bucket)["fed/genomics/state.json"].generation == generation


def test_a_held_lock_fails_a_second_render_with_exit_3_naming_the_holder(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    location = f"gs://{bucket}/p"
    holder = GcsStore.from_url(location)
    with holder.lock():
        result = _render(spec, location)
        assert result.exit_code == 3, result.output
        line = _one_line(result.output)
        assert f"pid {os.getpid()} on {socket.gethostname()} since " in line
        assert f"fedgen state unlock --state {location}" in line
        assert "p/lock" in gcs.objects(bucket)
    assert "p/lock" not in gcs.objects(bucket)  # released on exit
    assert _render(spec, location).exit_code == 0


def test_a_stale_lock_is_removed_by_state_unlock(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    location = f"gs://{bucket}/p"
    # A lock of a process on this host that is gone: unlock removes it without --force.
    stale = {"host": socket.gethostname(), "pid": _dead_pid(), "since": "2024-01-02T03:04:05Z", "id": "dead"}
    gcs.client().bucket(bucket).blob("p/lock").upload_from_string(json.dumps(stale), if_generation_match=0)
    blocked = _render(spec, location)
    assert blocked.exit_code == 3
    assert f"locked by pid {stale['pid']} on {socket.gethostname()} since 2024-01-02T03:04:05Z" in _one_line(blocked.output)
    unlock = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert unlock.exit_code == 0, unlock.output
    assert f"removed the lock of pid {stale['pid']} on {socket.gethostname()}" in unlock.output
    assert "p/lock" not in gcs.objects(bucket)
    assert _render(spec, location).exit_code == 0
    again = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert again.exit_code == 0 and "not locked" in again.output


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _foreign_lease(gcs: Emulator, bucket: str, name: str, *, lease_seconds: float | None = 300, host: str = "other-host") -> dict[str, Any]:
    """A lock object written by a fedgen on another host (lease_seconds None: an older fedgen's lock)."""
    record: dict[str, Any] = {"host": host, "pid": 4242, "user": "alice", "command": "fedgen render fed.yaml", "since": "2024-01-02T03:04:05Z", "id": "theirs"}
    if lease_seconds is not None:
        record["lease_seconds"] = lease_seconds
    gcs.client().bucket(bucket).blob(name).upload_from_string(json.dumps(record), if_generation_match=0)
    return record


def _wait_until_expired(store: GcsStore) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lease = store.read_lease()
        assert lease is not None
        if lease.expired():
            return
        time.sleep(0.1)
    pytest.fail("the lease never expired")


def test_the_lock_is_a_lease_naming_owner_and_expiry(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    location = f"gs://{bucket}/p"
    holder = GcsStore.from_url(location)
    with holder.lock():
        blob = gcs.client().bucket(bucket).get_blob("p/lock")
        record = json.loads(blob.download_as_bytes())
        assert record["host"] == socket.gethostname() and record["pid"] == os.getpid()
        assert record["user"] == getpass.getuser() and record["command"]
        assert record["lease_seconds"] == LEASE_SECONDS
        lease = holder.read_lease()
        assert lease is not None and lease.generation == blob.generation
        # The expiry counts from the object's last write, by the storage server's clock.
        assert lease.expires == blob.updated + timedelta(seconds=LEASE_SECONDS)
        blocked = _render(spec, location)
        assert blocked.exit_code == 3
        line = _one_line(blocked.output)
        assert f"({record['user']}: " in line and f"lease valid until {lease.expires:%Y-%m-%dT%H:%M:%SZ}" in line


def test_a_live_lease_of_another_host_is_removed_only_with_force(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    location = f"gs://{bucket}/p"
    _foreign_lease(gcs, bucket, "p/lock")
    refused = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert refused.exit_code == 3
    line = _one_line(refused.output)
    assert "locked by pid 4242 on other-host since 2024-01-02T03:04:05Z (alice: fedgen render fed.yaml), lease valid until " in line
    assert f"fedgen state unlock --state {location} --force" in line
    assert "p/lock" in gcs.objects(bucket)
    assert _render(spec, location).exit_code == 3  # a live lease is not taken over
    GcsStore.from_url(location).save(StateDocument(project="genomics"))
    # Irreversible: without a terminal to ask on, only with --yes.
    unasked = CliRunner().invoke(main, ["state", "unlock", "--state", location, "--force"])
    assert unasked.exit_code == 2 and "pass --yes" in _one_line(unasked.output)
    assert sorted(gcs.objects(bucket)) == ["p/lock", "p/state.json"]
    forced = CliRunner().invoke(main, ["state", "unlock", "--state", location, "--force", "--yes"])
    assert forced.exit_code == 0, forced.output
    assert "removed the lock of pid 4242 on other-host" in forced.output
    # First a copy of the state beside it, named in the output.
    (copy,) = [name for name in gcs.objects(bucket) if name.startswith("p/state.json.backup-")]
    assert f"backed up the state {location} to gs://{bucket}/{copy}" in forced.stderr
    assert gcs.read(bucket, copy) == gcs.read(bucket, "p/state.json")
    assert "p/lock" not in gcs.objects(bucket)
    # An older fedgen's lock (no lease time) of another host never expires by itself: --force as well.
    _foreign_lease(gcs, bucket, "p/lock", lease_seconds=None)
    old = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert old.exit_code == 3 and "with no lease expiry" in old.output and "--force" in old.output
    assert CliRunner().invoke(main, ["state", "unlock", "--state", location, "--force", "--yes"]).exit_code == 0


def test_an_expired_lease_is_taken_over_and_removable_without_force(gcs: Emulator, write_spec: SpecWriter) -> None:
    bucket = gcs.create_bucket()
    spec = write_spec()
    location = f"gs://{bucket}/p"
    _foreign_lease(gcs, bucket, "p/lock", lease_seconds=1)
    _wait_until_expired(GcsStore.from_url(location))
    taken = _render(spec, location)
    assert taken.exit_code == 0, taken.output
    assert "p/lock" not in gcs.objects(bucket)  # taken over, then released by its new holder
    _foreign_lease(gcs, bucket, "p/lock", lease_seconds=1)
    _wait_until_expired(GcsStore.from_url(location))
    unlock = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert unlock.exit_code == 0, unlock.output
    assert "lease expired" in unlock.output and "p/lock" not in gcs.objects(bucket)


def test_of_two_contenders_for_an_expired_lease_one_wins(gcs: Emulator) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    _foreign_lease(gcs, bucket, "p/lock", lease_seconds=1)
    _wait_until_expired(GcsStore.from_url(location))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def contend() -> None:
        store = GcsStore.from_url(location)
        barrier.wait()
        try:
            with store.lock():
                outcomes.append("won")
                held.set()
                release.wait(30)
        except ExternalError as exc:
            outcomes.append(f"lost: {exc}")
            held.wait(30)
            release.set()

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(o.split(":")[0] for o in outcomes) == ["lost", "won"], outcomes
    assert f"pid {os.getpid()} on {socket.gethostname()}" in next(o for o in outcomes if o.startswith("lost"))
    assert "p/lock" not in gcs.objects(bucket)


def test_a_held_lease_is_renewed_so_it_outlives_its_first_expiry(gcs: Emulator) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    holder = GcsStore(bucket, "p", lease_seconds=4, renew_seconds=0.2)
    with holder.lock():
        first = holder.read_lease()
        assert first is not None and first.expires is not None
        while datetime.now(timezone.utc) < first.expires + timedelta(seconds=1):
            time.sleep(0.2)
        now = holder.read_lease()
        assert now is not None and now.holder["id"] == first.holder["id"]
        assert now.generation != first.generation and not now.expired()
        with pytest.raises(ExternalError, match="lease valid until"):
            with GcsStore.from_url(location).lock():
                pass
    assert "p/lock" not in gcs.objects(bucket)


def test_a_holder_whose_lease_was_taken_refuses_to_save(gcs: Emulator) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    store = GcsStore.from_url(location)
    with store.lock():
        store.load()
        gcs.client().bucket(bucket).delete_blob("p/lock")  # as `state unlock --force` from another host would
        _foreign_lease(gcs, bucket, "p/lock")
        with pytest.raises(ExternalError, match="taken over or removed while it ran .*held by pid 4242 on other-host"):
            store.save(StateDocument(project="mine"))
    assert "p/state.json" not in gcs.objects(bucket)
    assert json.loads(gcs.read(bucket, "p/lock"))["id"] == "theirs"  # not ours to release


def test_load_needs_only_read_access(gcs: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    GcsStore.from_url(location).save(StateDocument(project="genomics"))
    before = {n: b.generation for n, b in gcs.objects(bucket).items()}
    with ReadOnlyProxy(gcs) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        assert GcsStore.from_url(location).load().project == "genomics"
        assert GcsStore.from_url(f"gs://{bucket}/absent").load() == StateDocument()
        assert GcsStore.from_url(location).read_lease() is None
    assert proxy.requests and proxy.writes == []
    assert {n: b.generation for n, b in gcs.objects(bucket).items()} == before


def test_a_state_in_the_workspace_bucket_is_refused(gcs: Emulator, write_spec: SpecWriter) -> None:
    """The server pod mounts the workspace bucket read-write: a CA key there is a key in the pod."""
    workspace = gcs.create_bucket()

    def edit(data: dict[str, Any]) -> None:
        data["spec"]["workspace"]["bucketName"] = workspace

    spec = write_spec(edit)
    repo = spec.parent.parent
    result = _render(spec, f"gs://{workspace}/fedgen-state")
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert f"--state gs://{workspace}/fedgen-state: bucket {workspace} is mounted by the federation's workloads" in line
    assert gcs.objects(workspace) == {} and not (repo / "clusters").exists()
    # The derived name (<projectId>-<prefix>-<platform>-<bucket>) too, for every command that opens the state.
    derived = "gen-proj-gx-prod-flws"
    for args in (
        ["render", str(spec), "--repo", str(repo), "--state", f"gs://{derived}"],
        ["client-bundle", "site-a", "--spec", str(write_spec()), "--repo", str(repo), "--state", f"gs://{derived}/x"],
        ["certs", str(spec), "--repo", str(repo), "--state", f"gs://{derived}/x"],
    ):
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 2 and f"bucket {derived} is mounted" in _one_line(refused.output), args


def test_unlock_refuses_a_lock_held_by_a_live_process_on_this_host(gcs: Emulator) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    with GcsStore.from_url(location).lock():
        with pytest.raises(ExternalError, match="still running on this host"):
            force_unlock(location, Path("."))


def test_concurrent_saves_with_a_stale_generation_fail(gcs: Emulator) -> None:
    bucket = gcs.create_bucket()
    location = f"gs://{bucket}/p"
    a, b = GcsStore.from_url(location), GcsStore.from_url(location)
    # Both start from "absent" (generation 0): only one may create the document.
    assert a.load() == StateDocument() and b.load() == StateDocument()
    a.save(StateDocument(project="first"))
    with pytest.raises(ExternalError, match="changed by another writer since it was read"):
        b.save(StateDocument(project="second"))
    # Both read generation N: the first save wins, the second is refused, nothing is overwritten.
    a, b = GcsStore.from_url(location), GcsStore.from_url(location)
    a.load(), b.load()
    a.save(StateDocument(project="third"))
    with pytest.raises(ExternalError, match=r"expected generation \d+, now generation \d+"):
        b.save(StateDocument(project="fourth"))
    assert json.loads(gcs.read(bucket, "p/state.json"))["project"] == "third"
    # A fresh load picks up the current generation and saves fine.
    b.load()
    b.save(StateDocument(project="fifth"))
    assert GcsStore.from_url(location).load().project == "fifth"


def test_missing_bucket_is_exit_3_in_one_line(gcs: Emulator, write_spec: SpecWriter) -> None:
    spec = write_spec()
    result = _render(spec, "gs://no-such-bucket-for-fedgen/p")
    assert result.exit_code == 3
    line = _one_line(result.output)
    assert line == "error: state gs://no-such-bucket-for-fedgen/p: bucket no-such-bucket-for-fedgen does not exist or these credentials cannot see it"


def test_unreachable_storage_is_exit_3_in_one_line(write_spec: SpecWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDGEN_GCS_RETRY_SECONDS", "0.5")
    spec = write_spec()
    with refusing_port() as port:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        result = _render(spec, "gs://some-bucket/p")
    assert result.exit_code == 3
    assert "cannot reach Cloud Storage at http://127.0.0.1:" in _one_line(result.output)


def test_local_unlock_reports_and_never_removes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = CliRunner().invoke(main, ["state", "unlock", "--state", str(state)])
    assert result.exit_code == 0 and "not locked" in result.output
    store = LocalStore(state)
    with store.lock():
        held = CliRunner().invoke(main, ["state", "unlock", "--state", str(state)])
        assert held.exit_code == 3
        assert f"pid {os.getpid()}" in _one_line(held.output) and "never stale" in held.output
    assert (state / "lock").exists()  # never unlinked: that would break the flock's mutual exclusion
    free = CliRunner().invoke(main, ["state", "unlock", "--state", str(state)])
    assert free.exit_code == 0 and "never stale" in free.output


def test_bad_gs_url_is_an_input_error(write_spec: SpecWriter) -> None:
    spec = write_spec()
    result = _render(spec, "gs://Bad_Bucket!/p")
    assert result.exit_code == 2 and "not a valid Cloud Storage bucket name" in result.output


def _storage_failures() -> list[tuple[BaseException, str]]:
    import requests
    from google.api_core import exceptions as gx

    refused = requests.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries exceeded ([Errno 111] Connection refused)")
    return [
        (gx.Forbidden("POST https://storage.googleapis.com/x: caller does not have storage.objects.create access"), "permission denied"),
        (gx.Unauthorized("no token"), "not authenticated"),
        (gx.NotFound("bucket"), "bucket b1 does not exist or these credentials cannot see it"),
        (gx.RetryError("Timeout of 60.0s exceeded", refused), "cannot reach Cloud Storage at"),
        (gx.ServiceUnavailable("backend down\nsecond line"), "storage error 503: backend down"),
    ]


@pytest.mark.parametrize(("exc", "expected"), _storage_failures())
def test_storage_failures_become_one_line_external_errors(exc: BaseException, expected: str) -> None:
    from fedgen.cloudstorage import storage_errors

    with pytest.raises(ExternalError) as info:
        with storage_errors("state gs://b1/p", "b1"):
            raise exc
    message = str(info.value)
    assert message.startswith("state gs://b1/p: ") and expected in message and "\n" not in message
    assert info.value.exit_code == 3


def test_help_states_the_lease_length_in_force() -> None:
    text = " ".join(CliRunner().invoke(main, ["state", "unlock", "--help"]).output.split())
    assert f"expiring {LEASE_SECONDS // 60} minutes after its last renewal" in text
    assert LEASE_SECONDS % 60 == 0 and RENEW_SECONDS * 3 <= LEASE_SECONDS  # a live holder survives missed renewals
