"""Concurrency: renders against one state take turns; the tree and the state are never interleaved.

Two real `fedgen render` processes started together against one local state, and against one Cloud Storage
state (fake-gcs-server): one proceeds, the other exits 3 with one line naming the holder (the lock does not
wait). And a render started while another one is half way through writing the tree: it waits for that write
to finish (the repo's write lock) instead of "recovering" the other's staging folder under its feet.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fedgen._crashpoint import PAUSE_ENV, REACHED_ENV
from fedgen.state.document import StateDocument
from tests.gcs_emulator import Emulator
from tests.support import OTHER_SPEC, dump_yaml, tree_snapshot

FEDGEN = str(Path(sys.executable).parent / "fedgen")
SPEC = "spec/federation.yaml"
HELD = re.compile(r"^error: state \S+ is locked by pid (?P<pid>\d+) on (?P<host>\S+) since \S+")


def _spec(repo: Path, sealing_cert: Path, *, sites: int = 8, ports: dict[str, int] | None = None) -> Path:
    (repo / "spec").mkdir(parents=True, exist_ok=True)
    shutil.copy(sealing_cert, repo / "spec" / "sealing.pem")
    doc: dict[str, Any] = copy.deepcopy(OTHER_SPEC)
    # Enough new certificates that the first render holds the lock well past the second one's start.
    doc["spec"]["sites"] = [{"name": f"site-{i}", "org": "hospital_a"} for i in range(sites)]
    if ports:
        doc["spec"]["server"]["ports"] = ports
    dump_yaml(doc, repo / SPEC)
    return repo / SPEC


def _tree(repo: Path) -> dict[str, bytes]:
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def _start(repo: Path, *args: str, env: dict[str, str] | None = None, spec: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [FEDGEN, "render", str(spec or repo / SPEC), "--repo", str(repo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _wait_for(marker: Path, proc: subprocess.Popen[str], timeout: float = 300) -> bool:
    """Wait until `proc` creates `marker` (a fedgen._crashpoint hook: True) or exits (False). The timeout only
    keeps a broken run from hanging the suite."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            return marker.exists()
        assert time.monotonic() < deadline, f"{marker.name} not reached within {timeout:.0f} s"
        time.sleep(0.01)
    return True


def _together(repo: Path, *args: str) -> list[tuple[subprocess.Popen[str], str]]:
    procs = [_start(repo, *args), _start(repo, *args)]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        out.append((p, err))
    return out


def _one_winner(results: list[tuple[subprocess.Popen[str], str]]) -> None:
    codes = sorted(p.returncode for p, _ in results)
    assert codes == [0, 3], [(p.returncode, err) for p, err in results]
    (winner, _), (loser, err) = sorted(results, key=lambda r: r[0].returncode)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one clear line, no traceback
    held = HELD.match(lines[0])
    assert held, lines[0]
    assert int(held["pid"]) == winner.pid  # names the render that holds the lock


def _consistent(repo: Path, state: str | None = None) -> None:
    """What the winner wrote is complete: a check render (same spec, same state) finds no drift."""
    from fedgen import api

    assert not (repo / ".fedgen" / "tmp").exists() and not (repo / ".fedgen" / "journal.json").exists()
    result = api.render(spec=repo / SPEC, repo=repo, state=state, check=True)
    assert result.plan.is_noop, [c.path for c in result.plan.changes]
    assert result.issued == ()


def _race(run: Any, attempts: int = 3) -> None:
    """run(attempt) starts two renders together and returns their results. They must overlap at least once
    (on a very busy machine one can finish before the other starts: both then succeed, which is checked too)."""
    for attempt in range(attempts):
        results = run(attempt)
        codes = sorted(p.returncode for p, _ in results)
        if codes == [0, 0]:
            continue
        _one_winner(results)
        return
    pytest.fail(f"the two renders never overlapped in {attempts} attempts")


def test_two_renders_started_together_on_one_local_state(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> None:
    def run(attempt: int) -> list[tuple[subprocess.Popen[str], str]]:
        repo = tmp_path / f"repo{attempt}"
        _spec(repo, sealing_keypair[1])
        results = _together(repo)
        _consistent(repo)
        states = sorted((repo / ".fedgen" / "state").rglob("state.json"))
        assert len(states) == 1
        doc = StateDocument.from_bytes(states[0].read_bytes(), "state")
        assert len(doc.participants) == 8 + 2
        assert sorted(p.name for p in states[0].parent.iterdir()) == ["lock", "state.json"]
        return results

    _race(run)


def test_two_renders_started_together_on_one_gcs_state(gcs: Emulator, tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> None:
    def run(attempt: int) -> list[tuple[subprocess.Popen[str], str]]:
        bucket = gcs.create_bucket()
        location = f"gs://{bucket}/fed/genomics"
        repo = tmp_path / f"repo{attempt}"
        _spec(repo, sealing_keypair[1])
        results = _together(repo, "--state", location)
        assert sorted(gcs.objects(bucket)) == ["fed/genomics/state.json"]  # the winner released its lock
        doc = StateDocument.from_bytes(gcs.read(bucket, "fed/genomics/state.json"), "state")
        assert len(doc.participants) == 8 + 2
        assert not (repo / ".fedgen" / "state").exists()
        _consistent(repo, location)
        return results

    _race(run)


@contextmanager
def _render_paused(spec: Path, repo: Path, install: Callable[[Callable[[], None]], None]) -> Iterator[int]:
    """A real render of spec in a forked child (A), stopped wherever install(pause) makes it call pause();
    the body runs while A waits, then A resumes and must succeed. Yields A's pid."""
    from fedgen import api

    paused_r, paused_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(paused_r)
            os.close(go_w)

            def pause() -> None:
                os.write(paused_w, b"x")
                os.read(go_r, 1)

            install(pause)
            api.render(spec=spec, repo=repo)
            code = 0
        finally:
            os._exit(code)
    os.close(paused_w)
    os.close(go_r)
    try:
        assert os.read(paused_r, 1) == b"x", "the render never reached its pause"
        yield pid
    finally:
        os.write(go_w, b"g")
        os.close(go_w)
        os.close(paused_r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the paused render failed (status {status})"


def test_a_render_waits_for_another_renders_write_to_finish(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> None:
    """B starts while A is between staging files: B must not touch A's staging folder (it used to delete it,
    and A then committed a journal whose moves silently skipped the missing files: a mixed tree)."""
    from fedgen import api
    from fedgen.write import apply as apply_mod

    old = {"fl": 9102, "admin": 9103}
    new = {"fl": 9202, "admin": 9203}
    repo = tmp_path / "repo"
    spec = _spec(repo, sealing_keypair[1], sites=2, ports=old)
    api.render(spec=spec, repo=repo)
    expected = tmp_path / "expected"
    shutil.copytree(repo, expected)
    _spec(expected, sealing_keypair[1], sites=2, ports=new)
    api.render(spec=expected / SPEC, repo=expected)  # re-issues nothing: one possible new tree
    _spec(repo, sealing_keypair[1], sites=2, ports=new)
    assert _tree(expected) != _tree(repo)

    def after_two_staged_files(pause: Callable[[], None]) -> None:
        real = apply_mod._write_file
        count = [0]

        def write(path: Path, data: bytes) -> None:
            real(path, data)
            count[0] += 1
            if count[0] == 2:
                pause()

        apply_mod._write_file = write  # type: ignore[assignment]

    waiting = tmp_path / "b-waits-for-the-write-lock"
    with _render_paused(repo / SPEC, repo, after_two_staged_files) as pid:
        assert (repo / ".fedgen" / "tmp").is_dir()  # A is staging
        b = _start(repo, env={REACHED_ENV: f"write-lock-wait:{waiting}"})
        _wait_for(waiting, b)
        # B is waiting for A's write lock, or finished without touching anything of A's.
        assert (repo / ".fedgen" / "tmp").is_dir() and len(list((repo / ".fedgen" / "tmp").rglob("*"))) >= 3
    _, err = b.communicate(timeout=300)
    assert b.returncode in (0, 3), err
    if b.returncode == 3:
        held = HELD.match(err.strip())
        assert held and int(held["pid"]) == pid, err
    assert _tree(repo) == _tree(expected)
    _consistent(repo)


def test_a_killed_holder_leaves_a_lock_the_next_render_can_take(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> None:
    """The local lock is an flock: it dies with its holder, so a SIGKILLed render never blocks the next one."""
    repo = tmp_path / "repo"
    _spec(repo, sealing_keypair[1], sites=2)
    provisioning = tmp_path / "a-provisions"
    # A stops inside NVFlare's provisioning, holding the state lock (one process: no worker pauses instead).
    a = _start(repo, env={PAUSE_ENV: f"provision:{provisioning}", "FEDGEN_PROVISION_WORKERS": "1"})
    assert _wait_for(provisioning, a), a.communicate()
    assert any((repo / ".fedgen" / "state").rglob("lock"))
    a.send_signal(signal.SIGKILL)
    a.communicate(timeout=60)
    b = _start(repo)
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
    _consistent(repo)


def test_two_federations_rendering_into_one_repo_at_once_keep_both_contributions(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> None:
    """Shared files (cluster kustomization, RootSync, tfvars) are computed from every federation's ledger.
    A (genomics) is paused right after making its plan; B (imaging, same cluster) renders meanwhile. B must
    wait for A's write (the plan is made under the repo's write lock), so both contributions survive: a check
    render of either federation finds nothing to change. (Planning outside the lock, B wrote first and A's
    stale plan then dropped B from every shared file.)"""
    from fedgen import api
    from fedgen.api import rendering

    repo = tmp_path / "repo"
    _spec(repo, sealing_keypair[1], sites=2)
    doc: dict[str, Any] = copy.deepcopy(OTHER_SPEC)
    doc["metadata"]["name"] = "imaging"
    doc["spec"]["server"].update(name="imgserver", tenant="fl-imaging", ports={"fl": 9202, "admin": 9203}, hostNames=["imgserver"])
    doc["spec"]["sites"] = [{"name": "site-x", "org": "hospital_x"}]
    imaging = repo / "spec" / "imaging.yaml"
    dump_yaml(doc, imaging)

    def after_the_plan(pause: Callable[[], None]) -> None:
        real = rendering.make_plan

        def plan_then_pause(*args: Any, **kwargs: Any) -> Any:
            made = real(*args, **kwargs)
            pause()
            return made

        rendering.make_plan = plan_then_pause  # type: ignore[assignment]

    waiting = tmp_path / "b-waits-for-the-write-lock"
    with _render_paused(repo / SPEC, repo, after_the_plan):
        b = _start(repo, env={REACHED_ENV: f"write-lock-wait:{waiting}"}, spec=imaging)
        # B waits for A's write lock (with the bug it planned and wrote meanwhile: the checks below fail).
        assert _wait_for(waiting, b), b.communicate()
    _, err = b.communicate(timeout=300)
    assert b.returncode == 0, err
    for spec in (repo / SPEC, imaging):
        drift = api.render(spec=spec, repo=repo, check=True).plan
        assert drift.is_noop, (spec.name, [c.path for c in drift.changes])
    assert b"from spec/federation.yaml, spec/imaging.yaml" in (repo / "clusters/gke-eu/bootstrap/root-sync.yaml").read_bytes()


def _held_by_another_open_file(lock_path: Path) -> int:
    """An flock on lock_path through a descriptor of its own (flocks of two open files conflict even in one
    process): what another process that has just taken the lock looks like, before it wrote its record."""
    import fcntl

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_contender_waits_for_the_record_of_a_holder_that_has_just_taken_the_lock(tmp_path: Path) -> None:
    """The holder writes its record just after its flock: a contender that finds no record yet reads again
    instead of reporting "an unknown process" (the intermittent failure of the race test above)."""
    import json
    import threading

    from fedgen.errors import ExternalError
    from fedgen.holder import holder_record
    from fedgen.state.local import LocalStore

    store = LocalStore(tmp_path / "state")
    with store.lock():
        pass
    lock_path = tmp_path / "state" / "lock"
    assert lock_path.read_bytes() == b""  # released: no holder recorded
    fd = _held_by_another_open_file(lock_path)
    record = {**holder_record(), "pid": os.getpid(), "command": "fedgen render late.yaml"}
    writer = threading.Timer(0.3, lambda: os.pwrite(fd, json.dumps(record).encode(), 0))
    writer.start()
    try:
        with pytest.raises(ExternalError, match=rf"is locked by pid {os.getpid()} on \S+ since \S+ \(.*fedgen render late.yaml\)"):
            with store.lock():
                pass
    finally:
        writer.join()
        os.close(fd)


def test_a_contender_takes_a_lock_released_while_it_waited_and_records_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from fedgen.errors import ExternalError
    from fedgen.state import local
    from fedgen.state.local import LocalStore

    store = LocalStore(tmp_path / "state")
    with store.lock():
        pass
    lock_path = tmp_path / "state" / "lock"
    # A record of a process of this host that is gone (killed while it held the lock) is no answer either:
    # with the lock still held and no other record, the contender gives up after HOLDER_WAIT.
    fd = _held_by_another_open_file(lock_path)
    os.pwrite(fd, json.dumps({"host": os.uname().nodename, "pid": 2**22 + 7, "since": "2026-01-01T00:00:00Z"}).encode(), 0)
    monkeypatch.setattr(local, "HOLDER_WAIT", 0.2)
    with pytest.raises(ExternalError, match="is locked by an unknown process"):
        with store.lock():
            pass
    os.close(fd)  # released meanwhile: the next contender takes it and writes its own record
    with store.lock():
        assert json.loads(lock_path.read_bytes())["pid"] == os.getpid()
    assert lock_path.read_bytes() == b""


@pytest.mark.parametrize("made_with, refused", [(0o700, False), (0o755, True)])
def test_a_state_folder_made_meanwhile_by_another_process_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_with: int, refused: bool) -> None:
    """Two renders started together on a new state both find its folder missing; the one that loses the mkdir
    goes on (and then loses the lock, naming the winner) instead of failing with "File exists", and judges
    the folder the other one made like any it finds."""
    from fedgen.errors import InputError
    from fedgen.state.local import LocalStore

    state = tmp_path / ".fedgen" / "state" / "genomics"
    real_mkdir = Path.mkdir

    def made_by_another_first(self: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        if self == state:
            real_mkdir(self)
            os.chmod(self, made_with)
            raise FileExistsError(17, "File exists")
        real_mkdir(self, mode, parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", made_by_another_first)
    store = LocalStore(state, private_parents=2)
    if refused:
        with pytest.raises(InputError, match=f"state {state} is open to other users"):
            with store.lock():
                pass
        return
    with store.lock():
        assert (state / "lock").is_file()
