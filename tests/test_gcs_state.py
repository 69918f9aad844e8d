"""State on Cloud Storage (`--state gs://bucket/prefix`) against the real fake-gcs-server."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedgen.cli import main
from fedgen.errors import ExternalError
from fedgen.state import StateDocument
from fedgen.state.gcs import GcsStore
from fedgen.state.unlock import force_unlock
from fedgen.state.local import LocalStore
from tests.gcs_emulator import Emulator, free_port, gcs, gcs_emulator  # noqa: F401
from tests.support import tree_snapshot

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
    stale = {"host": "gone-host", "pid": 4242, "since": "2024-01-02T03:04:05Z", "id": "dead"}
    gcs.client().bucket(bucket).blob("p/lock").upload_from_string(json.dumps(stale), if_generation_match=0)
    blocked = _render(spec, location)
    assert blocked.exit_code == 3
    assert "locked by pid 4242 on gone-host since 2024-01-02T03:04:05Z" in _one_line(blocked.output)
    unlock = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert unlock.exit_code == 0, unlock.output
    assert "removed the lock of pid 4242 on gone-host" in unlock.output
    assert "p/lock" not in gcs.objects(bucket)
    assert _render(spec, location).exit_code == 0
    again = CliRunner().invoke(main, ["state", "unlock", "--state", location])
    assert again.exit_code == 0 and "not locked" in again.output


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
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FEDGEN_GCS_RETRY_SECONDS", "0.5")
    spec = write_spec()
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
    from fedgen.gcs import storage_errors

    with pytest.raises(ExternalError) as info:
        with storage_errors("state gs://b1/p", "b1"):
            raise exc
    message = str(info.value)
    assert message.startswith("state gs://b1/p: ") and expected in message and "\n" not in message
    assert info.value.exit_code == 3
