"""fedgen workspace push against the real fake-gcs-server: skip what matches, never a key, resume after a cut."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedgen.cli import main
from fedgen.state import StateDocument
from fedgen.state.gcs import GcsStore
from tests.gcs_emulator import Emulator, ReadOnlyProxy

SpecWriter = Callable[..., Path]
PREFIX = "genomics/flserver/transfer/"  # OTHER_SPEC: project genomics, server flserver


def _spec(write_spec: SpecWriter, bucket: str) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["spec"]["workspace"]["bucketName"] = bucket

    return write_spec(edit)


def _job(folder: Path, files: int = 3, size: int = 100) -> Path:
    """An NVFlare-shaped job folder: meta.json and app files."""
    (folder / "app/config").mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"name": folder.name, "deploy_map": {"app": ["@ALL"]}}))
    (folder / "app/config/config_fed_server.json").write_text('{"format_version": 2}\n')
    for i in range(files):
        (folder / f"app/custom/part_{i:04d}.bin").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"app/custom/part_{i:04d}.bin").write_bytes(os.urandom(size))
    return folder


def _local_objects(job: Path) -> dict[str, bytes]:
    return {f"{PREFIX}{job.name}/{p.relative_to(job).as_posix()}": p.read_bytes() for p in sorted(job.rglob("*")) if p.is_file()}


def _push(spec: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["workspace", "push", str(spec), "--repo", str(spec.parent.parent), *args])


def _summary(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(("done:", "dry run")))


def test_push_uploads_the_jobs_and_a_repush_uploads_nothing(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    job = _job(tmp_path / "hello-numpy")
    expected = _local_objects(job)
    first = _push(spec, "--jobs", str(job))
    assert first.exit_code == 0, first.output
    assert _summary(first.output) == f"done: {len(expected)} created, 0 updated, 0 unchanged in gs://{bucket}/genomics/flserver/"
    assert sorted(line.split("\t")[1] for line in first.output.splitlines() if line.startswith("create\t")) == sorted(f"gs://{bucket}/{n}" for n in expected)
    listed = gcs.objects(bucket)
    assert sorted(listed) == sorted(expected)
    assert all(gcs.read(bucket, name) == data for name, data in expected.items())
    generations = {n: b.generation for n, b in listed.items()}
    again = _push(spec, "--jobs", str(job))
    assert again.exit_code == 0, again.output
    assert _summary(again.output).startswith(f"done: 0 created, 0 updated, {len(expected)} unchanged")
    assert {n: b.generation for n, b in gcs.objects(bucket).items()} == generations


def test_one_changed_file_uploads_one_object(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    job = _job(tmp_path / "job1", files=5)
    assert _push(spec, "--jobs", str(job)).exit_code == 0
    before = {n: b.generation for n, b in gcs.objects(bucket).items()}
    changed = job / "app/custom/part_0002.bin"
    changed.write_bytes(b"new content")
    result = _push(spec, "--jobs", str(job))
    assert result.exit_code == 0, result.output
    name = f"{PREFIX}job1/app/custom/part_0002.bin"
    assert [line for line in result.output.splitlines() if "\t" in line] == [f"update\tgs://{bucket}/{name}"]
    assert _summary(result.output).startswith(f"done: 0 created, 1 updated, {len(before) - 1} unchanged")
    after = {n: b.generation for n, b in gcs.objects(bucket).items()}
    assert {n for n in after if after[n] != before[n]} == {name}
    assert gcs.read(bucket, name) == b"new content"


def test_dry_run_lists_and_uploads_nothing(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    job = _job(tmp_path / "job2")
    result = _push(spec, "--jobs", str(job), "--dry-run")
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("create\t") for line in result.output.splitlines()) == len(_local_objects(job))
    assert "nothing uploaded" in _summary(result.output)
    assert gcs.objects(bucket) == {}


@pytest.mark.parametrize("bad", ["secrets/site.key", "notes.txt"])
def test_refuses_private_keys_and_uploads_nothing(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path, bad: str) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    job = _job(tmp_path / "job3")
    (job / bad).parent.mkdir(parents=True, exist_ok=True)
    (job / bad).write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n" if bad.endswith(".txt") else "x")
    result = _push(spec, "--jobs", str(job))
    assert result.exit_code == 2
    assert "refusing to push private keys" in result.output and bad in result.output
    assert gcs.objects(bucket) == {}


def test_a_folder_that_is_not_a_job_is_refused(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = _spec(write_spec, gcs.create_bucket())
    (tmp_path / "plain").mkdir()
    result = _push(spec, "--jobs", str(tmp_path / "plain"))
    assert result.exit_code == 2 and "not an NVFlare job folder" in result.output


def test_missing_bucket_is_exit_3_in_one_line(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    spec = _spec(write_spec, bucket)
    result = _push(spec, "--jobs", str(_job(tmp_path / "job4")))
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"bucket {bucket} does not exist" in lines[0], result.output


def test_killed_mid_push_then_a_rerun_completes(write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator dies (SIGKILL) half way through a push; restarted on the same data, a rerun finishes."""
    emulator = Emulator(tmp_path / "gcs-data")
    emulator.start()
    try:
        bucket = emulator.create_bucket()
        spec = _spec(write_spec, bucket)
        job = _job(tmp_path / "big-job", files=150, size=1024)
        expected = _local_objects(job)
        env = {**os.environ, **emulator.env(), "FEDGEN_GCS_RETRY_SECONDS": "1"}
        cmd = [sys.executable, "-m", "fedgen", "workspace", "push", str(spec), "--repo", str(spec.parent.parent), "--jobs", str(job)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stored = tmp_path / "gcs-data" / bucket
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if stored.is_dir() and sum(1 for p in stored.rglob("*") if p.is_file()) >= 20:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the push finished before it could be cut off"
        emulator.kill()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "cannot reach Cloud Storage" in lines[0], err
        uploaded_before = sum(line.startswith("create\t") for line in out.splitlines())
        assert 0 < uploaded_before < len(expected)

        emulator.start()
        for key, value in {**emulator.env(), "FEDGEN_GCS_RETRY_SECONDS": "3"}.items():
            monkeypatch.setenv(key, value)
        rerun = _push(spec, "--jobs", str(job))
        assert rerun.exit_code == 0, rerun.output
        created = sum(line.startswith("create\t") for line in rerun.output.splitlines())
        assert 0 < created <= len(expected) - uploaded_before
        listed = emulator.objects(bucket)
        assert sorted(listed) == sorted(expected)
        for name, data in expected.items():
            assert emulator.read(bucket, name) == data, name
        final = _push(spec, "--jobs", str(job))
        assert _summary(final.output).startswith(f"done: 0 created, 0 updated, {len(expected)} unchanged")
    finally:
        emulator.kill()


def test_force_unlock_clears_a_stale_gcs_state_lock_first(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path) -> None:
    bucket, state_bucket = gcs.create_bucket(), gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = {"host": socket.gethostname(), "pid": gone.pid, "since": "2024-05-06T07:08:09Z", "id": "old", "lease_seconds": 300}
    gcs.client().bucket(state_bucket).blob("state/lock").upload_from_string(json.dumps(stale), if_generation_match=0)
    job = _job(tmp_path / "job5")
    blocked = _push(spec, "--jobs", str(job), "--state", f"gs://{state_bucket}/state")
    assert blocked.exit_code == 3 and f"locked by pid {gone.pid} on {socket.gethostname()}" in blocked.output
    result = _push(spec, "--jobs", str(job), "--state", f"gs://{state_bucket}/state", "--force-unlock")
    assert result.exit_code == 0, result.output
    assert f"removed the lock of pid {gone.pid} on {socket.gethostname()}" in result.output
    assert "state/lock" not in gcs.objects(state_bucket)


def test_dry_run_needs_only_read_access_and_takes_no_lock(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a proxy that refuses every write (read-only credentials), a dry run still plans the push."""
    bucket, state_bucket = gcs.create_bucket(), gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    GcsStore.from_url(f"gs://{state_bucket}/s").save(StateDocument(project="genomics"))
    job = _job(tmp_path / "job6")
    assert _push(spec, "--jobs", str(job), "--state", f"gs://{state_bucket}/s").exit_code == 0
    (job / "app/custom/part_0001.bin").write_bytes(b"changed")
    before = {(b, n): o.generation for b in (bucket, state_bucket) for n, o in gcs.objects(b).items()}
    with ReadOnlyProxy(gcs) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        result = _push(spec, "--jobs", str(job), "--state", f"gs://{state_bucket}/s", "--dry-run")
        # A local default state: the dry run creates no state folder and no lock file either.
        local = _push(spec, "--jobs", str(job), "--dry-run")
    for run in (result, local):
        assert run.exit_code == 0, run.output
        assert [line for line in run.output.splitlines() if "\t" in line] == [f"update\tgs://{bucket}/{PREFIX}job6/app/custom/part_0001.bin"]
    assert proxy.requests and proxy.writes == []  # no lock object was ever created, nothing uploaded
    assert {(b, n): o.generation for b in (bucket, state_bucket) for n, o in gcs.objects(b).items()} == before
    assert not (spec.parent.parent / ".fedgen").exists()


def _without_credentials(monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path) -> None:
    """The production client path (no emulator variable) against `endpoint`, and no usable Application Default
    Credentials: GOOGLE_APPLICATION_CREDENTIALS names a missing file, so google-auth finds none."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("API_ENDPOINT_OVERRIDE", endpoint)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-adc.json"))


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_dry_run_without_credentials_lists_a_public_listing_anonymously(
    gcs: Emulator, write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    job = _job(tmp_path / "job7")
    assert _push(spec, "--jobs", str(job)).exit_code == 0
    (job / "app/custom/part_0000.bin").write_bytes(b"changed")
    _without_credentials(monkeypatch, gcs.url, tmp_path)
    result = _push(spec, "--jobs", str(job), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"update\tgs://{bucket}/{PREFIX}job7/app/custom/part_0000.bin"]
    assert f"note: no Google Cloud credentials: listed gs://{bucket}/{PREFIX} anonymously" in result.stderr
    # An upload does need credentials: one line saying which, on which bucket.
    pushed = _push(spec, "--jobs", str(job))
    assert pushed.exit_code == 3
    line = _one_line(pushed.output)
    assert "no usable Google Cloud credentials" in line and "gcloud auth application-default login" in line
    assert f"it needs storage.objects.list, get, create and delete (to replace a changed file) on bucket {bucket} (roles/storage.objectUser)" in line


def test_dry_run_refused_anonymously_names_the_permission_and_the_bucket(
    gcs: Emulator, write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket that does not allow public listing answers an anonymous caller 401."""
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    with ReadOnlyProxy(gcs, private=True) as proxy:
        _without_credentials(monkeypatch, proxy.url, tmp_path)
        result = _push(spec, "--jobs", str(_job(tmp_path / "job8")), "--dry-run")
    assert proxy.requests  # it did ask the bucket
    assert result.exit_code == 3
    line = _one_line(result.output)
    assert (
        f"workspace gs://{bucket}/genomics/flserver/ (listed anonymously: no Google Cloud credentials found): refused to a caller without credentials" in line
    )
    assert f"it needs storage.objects.list on bucket {bucket} (roles/storage.objectViewer)" in line


def test_a_push_with_read_only_credentials_names_what_it_needs(gcs: Emulator, write_spec: SpecWriter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = gcs.create_bucket()
    spec = _spec(write_spec, bucket)
    with ReadOnlyProxy(gcs) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        result = _push(spec, "--jobs", str(_job(tmp_path / "job9")))
    assert result.exit_code == 3
    line = _one_line(result.output)
    assert "permission denied; the credentials need storage.objects.list, get, create and delete" in line
    assert f"on bucket {bucket} (roles/storage.objectUser)" in line
    assert gcs.objects(bucket) == {}
