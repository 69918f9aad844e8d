"""Crash safety: `fedgen render` killed with SIGKILL at every step of its write phase leaves the old tree or the
new tree (after the recovery every command starts with), never a mix, and a state that loads and renders again.

How the trials are made cheap: the write phase of a render calls fedgen._crashpoint.step() after every
filesystem operation (state save included); with FEDGEN_TEST_CRASH_AFTER=N the process SIGKILLs itself after
the N-th. Per scenario (an old spec and a new one), a driver process runs the real `fedgen.api.render` of the
new spec and, at the start of the write phase, forks one child per crash point: each child is that very
render (provisioned, sealed and planned once, in the driver) continuing into the write phase with a different
N, on a fresh copy of the old repo. The driver checks each crash, then recovers and compares the full tree.
Every distinct post-recovery repo (tree and state folder) is then rendered again and checked (no drift).
A few trials kill the real `fedgen render` command line instead (by step and by time), and a separate test
kills state saves at random moments.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedgen import _crashpoint
from fedgen.state.document import StateDocument
from tests.support import OTHER_SPEC, craft_request, dump_yaml, tree_snapshot, with_request_site, zip_bytes

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

SPEC = "spec/federation.yaml"
FEDGEN = str(Path(sys.executable).parent / "fedgen")


def _edit(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node = doc["spec"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


# Old spec -> new spec. Some re-issue certificates (new keys), some only move, rewrite or delete files.
SCENARIOS: dict[str, Callable[[dict[str, Any]], None]] = {
    "ports": _edit(["server", "ports"], {"fl": 9202, "admin": 9203}),
    "tenant-rename": _edit(["server", "tenant"], "fl-genomics-two"),
    "host-names": _edit(["server", "hostNames"], ["fl2.genomics.example.org", "flserver"]),
    "server-rename": _edit(["server", "name"], "flhub"),
    "exposure": _edit(["server", "exposure"], "loadbalancer"),
    # a state update only: one certificate issued, one dropped, no repo file changes
    "add-and-remove-sites": _edit(["sites"], [{"name": "site-a", "org": "hospital_a"}, {"name": "site-c", "org": "hospital_c"}]),
    "gitops-engine": _edit(["gitops", "engine"], "argocd"),
}


def _write_spec(repo: Path, edit: Callable[[dict[str, Any]], None] | None) -> None:
    doc = copy.deepcopy(OTHER_SPEC)
    if edit:
        edit(doc)
    dump_yaml(doc, repo / SPEC)


def _tree(repo: Path) -> dict[str, bytes]:
    """The repo as git sees it: everything but the state (and the spec folder the test edits)."""
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def _state_file(repo: Path) -> Path:
    found = sorted((repo / ".fedgen" / "state").rglob("state.json"))
    assert len(found) == 1, f"expected one state document under .fedgen/state, found {found}"
    return found[0]


def _everything(repo: Path) -> dict[str, bytes]:
    """Tree and state folder, byte for byte (the lock file's holder record aside)."""
    snap = tree_snapshot(repo, exclude=())
    return {p: (b"" if p.startswith(".fedgen/state/") and p.endswith("/lock") else d) for p, d in snap.items()}


def _digest(snap: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for path, data in sorted(snap.items()):
        h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


@pytest.fixture
def scratch(tmp_path: Path) -> Any:
    """Trial repos on a tmpfs when there is one: the trials fsync thousands of times, and a SIGKILL (unlike a
    power cut) loses nothing that was written, so the file system's durability plays no part."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="fedgen-crash-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, sealing_keypair: tuple[Path, Path]) -> Path:
    """A repo rendered from OTHER_SPEC: the old tree and old state of every trial."""
    from fedgen import api

    repo = tmp_path_factory.mktemp("crash") / "template"
    (repo / "spec").mkdir(parents=True)
    shutil.copy(sealing_keypair[1], repo / "spec" / "sealing.pem")
    _write_spec(repo, None)
    api.render(spec=repo / SPEC, repo=repo)
    return repo


# ---------------------------------------------------------------------------------------------------------
# In-process trials: one driver per scenario, one forked render per crash point


def _fork_call(fn: Callable[[], dict[str, Any]], out: Path) -> int:
    """Run fn in a forked child that writes its JSON result to out; return the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            out.write_text(json.dumps(fn()))
        except BaseException:  # noqa: BLE001 - whatever the child hit goes to the parent
            out.write_text(json.dumps({"error": traceback.format_exc()}))
            code = 1
        os._exit(code)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return status


def _scenario(template: Path, name: str, work: Path) -> dict[str, Any]:
    """Everything about one scenario, in a forked process: crash trials (driver), then re-render checks."""
    start = work / "start"
    shutil.copytree(template, start)
    _write_spec(start, SCENARIOS[name])
    repo = work / "repo"
    driver_out = work / "driver.json"
    status = _wait(_fork_call(lambda: _driver(start, repo, work), driver_out))
    result = json.loads(driver_out.read_text())
    if "error" in result or status != 0:
        return {"name": name, "error": result.get("error", f"driver status {status}")}
    result["name"] = name
    result["rerender"] = [_rerender(work / c, work / "new") for c in result.pop("classes")]
    return result


def _driver(start: Path, repo: Path, work: Path) -> dict[str, Any]:
    """Render the new spec; at the first write, fork one child per crash point (see the module docstring)."""
    from fedgen import api
    from fedgen.api import rendering
    from fedgen.state.local import LocalStore
    from fedgen.write import recover

    old_tree, old_state = _tree(start), _state_file(start).read_bytes()
    report: dict[str, Any] = {}
    role = {"child": False}

    def restore() -> None:
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(start, repo)

    def child(limit: int | None) -> int:
        """In the driver: the exit status of a render continuing with this crash limit. In the child: 0."""
        restore()
        pid = os.fork()
        if pid == 0:
            role["child"] = True
            if limit is None:
                os.environ.pop(_crashpoint.ENV, None)
            else:
                os.environ[_crashpoint.ENV] = str(limit)
            _crashpoint._done = 0
            return 0
        return _wait(pid)

    def gate(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not role["child"]:
                _run_trials()
            return real(*args, **kwargs)

        return wrapper

    def _run_trials() -> None:
        # The complete write, for the new tree and state.
        status = child(None)
        if role["child"]:
            return
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            raise AssertionError(f"the uninterrupted write failed (status {status})")
        shutil.copytree(repo, work / "new")
        new_tree, new_state = _tree(repo), _state_file(repo).read_bytes()
        assert new_tree != old_tree or new_state != old_state, "the scenario changes nothing"
        outcomes: list[dict[str, Any]] = []
        classes: dict[str, str] = {}
        limit = 0
        while True:
            limit += 1
            status = child(limit)
            if role["child"]:
                return
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                break  # the limit was past the last step: nothing was killed
            outcome: dict[str, Any] = {"step": limit, "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL}
            try:
                state_before_recovery = _state_file(repo).read_bytes()
                recover(repo)
                tree = _tree(repo)
                state = _state_file(repo).read_bytes()
                outcome["tree"] = "new" if tree == new_tree else "old" if tree == old_tree else "MIXED"
                outcome["state"] = "new" if state == new_state else "old" if state == old_state else "PARTIAL"
                outcome["state_untouched_by_recovery"] = state == state_before_recovery
                StateDocument.from_bytes(state, "state")  # loads
                st = _state_file(repo).stat()
                outcome["state_mode"] = oct(st.st_mode & 0o777)
                outcome["state_dir_mode"] = oct(_state_file(repo).parent.stat().st_mode & 0o777)
                if outcome["tree"] == "MIXED":
                    outcome["diff"] = sorted(
                        p
                        for p in set(tree) | set(old_tree) | set(new_tree)
                        if tree.get(p) not in (old_tree.get(p), new_tree.get(p)) or (p in tree) != (p in new_tree) and (p in tree) != (p in old_tree)
                    )[:10]
                key = _digest(_everything(repo))
                if key not in classes:
                    classes[key] = f"class-{len(classes)}"
                    shutil.copytree(repo, work / classes[key])
                outcome["class"] = classes[key]
            except Exception as exc:  # noqa: BLE001 - reported per trial
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcomes.append(outcome)
            if limit > 1000:
                raise AssertionError("no end to the write phase")
        report.update(trials=outcomes, classes=sorted(classes.values()), steps=limit - 1, tree_changes=new_tree != old_tree)
        (work / "driver.json").write_text(json.dumps(report))
        os._exit(0)

    LocalStore.save = gate(LocalStore.save)  # type: ignore[method-assign]
    rendering.apply_plan_locked = gate(rendering.apply_plan_locked)  # type: ignore[method-assign]
    shutil.copytree(start, repo)
    try:
        api.render(spec=repo / SPEC, repo=repo)
    except BaseException:
        if role["child"]:
            traceback.print_exc()
            os._exit(2)
        raise
    if role["child"]:
        os._exit(0)
    raise AssertionError("the render wrote nothing (no write phase)")


def _rerender(repo: Path, new: Path) -> dict[str, Any]:
    """A recovered repo renders again: no error, the new tree's files, and no drift afterwards."""
    from fedgen import api

    before_tree, before_state = _tree(repo), _state_file(repo).read_bytes()
    new_tree, new_state = _tree(new), _state_file(new).read_bytes()
    out: dict[str, Any] = {"class": repo.name}
    try:
        api.render(spec=repo / SPEC, repo=repo)
        after_tree, after_state = _tree(repo), _state_file(repo).read_bytes()
        out["same_paths_as_new"] = sorted(after_tree) == sorted(new_tree)
        if before_tree == new_tree and before_state == new_state:
            out["noop_when_complete"] = after_tree == before_tree and after_state == before_state
        out["no_drift"] = api.render(spec=repo / SPEC, repo=repo, check=True).plan.is_noop
        out["stale_files"] = sorted(p.name for p in _state_file(repo).parent.iterdir() if p.name not in ("state.json", "lock"))
        StateDocument.from_bytes(after_state, "state")
    except Exception as exc:  # noqa: BLE001 - reported to the parent as data
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def test_sigkill_at_every_write_step_leaves_old_or_new_tree(template: Path, scratch: Path) -> None:
    names = sorted(SCENARIOS)
    running: dict[int, tuple[str, Path]] = {}
    results: list[dict[str, Any]] = []
    parallel = max(1, min(2, len(os.sched_getaffinity(0))))
    queue = list(names)
    while queue or running:
        while queue and len(running) < parallel:
            name = queue.pop(0)
            work = scratch / name
            work.mkdir()
            pid = _fork_call(lambda name=name, work=work: _scenario(template, name, work), work / "result.json")
            running[pid] = (name, work)
        pid, _ = os.wait()
        name, work = running.pop(pid)
        results.append(json.loads((work / "result.json").read_text()) | {"name": name})

    problems: list[str] = []
    total = 0
    summary: list[str] = []
    for result in sorted(results, key=lambda r: r["name"]):
        name = result["name"]
        if "error" in result:
            problems.append(f"{name}: {result['error']}")
            continue
        trials = result["trials"]
        total += len(trials)
        counts: dict[str, int] = {}
        for t in trials:
            label = f"{t.get('tree')}/{t.get('state')}"
            counts[label] = counts.get(label, 0) + 1
            where = f"{name} step {t['step']}"
            if "error" in t:
                problems.append(f"{where}: {t['error']}")
                continue
            if not t["killed"]:
                problems.append(f"{where}: the render was not killed")
            if t["tree"] not in ("old", "new"):
                problems.append(f"{where}: mixed tree after recovery: {t.get('diff')}")
            if t["state"] not in ("old", "new"):
                problems.append(f"{where}: the state is neither the old nor the new document")
            if t["tree"] == "new" and t["state"] != "new" and result["tree_changes"]:
                problems.append(f"{where}: new tree with the old state (the state must be saved first)")
            if not t["state_untouched_by_recovery"]:
                problems.append(f"{where}: recovery changed the state")
            if (t["state_mode"], t["state_dir_mode"]) != ("0o600", "0o700"):
                problems.append(f"{where}: state modes {t['state_mode']} {t['state_dir_mode']}")
        seen = {(t.get("tree"), t.get("state")) for t in trials}
        if ("new", "new") not in seen or not any("old" in pair for pair in seen):
            problems.append(f"{name}: the crash points did not cover both sides of the commit point: {seen}")
        for r in result["rerender"]:
            where = f"{name} re-render of {r['class']}"
            if "error" in r:
                problems.append(f"{where}: {r['error']}")
                continue
            for flag in ("same_paths_as_new", "no_drift", "noop_when_complete"):
                if r.get(flag) is False:
                    problems.append(f"{where}: {flag} is false")
            if r["stale_files"]:
                problems.append(f"{where}: left in the state folder: {r['stale_files']}")
        summary.append(f"{name}: {result['steps']} steps, {counts}, {len(result['rerender'])} distinct repos re-rendered")
    print("\n".join(summary))
    assert not problems, "\n".join(problems[:30])
    assert total >= 200, f"only {total} crash trials"


# ---------------------------------------------------------------------------------------------------------
# The real command line


def _cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDGEN, "render", str(repo / SPEC), "--repo", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_sigkill_of_the_command_line_render(template: Path, scratch: Path) -> None:
    """`fedgen render` killed by step (in the state save, while staging, after the commit point) and at a
    random time; each time the next `fedgen render` (which recovers first) finishes the job."""
    from fedgen import api
    from fedgen.write import recover

    start = scratch / "start"
    shutil.copytree(template, start)
    _write_spec(start, SCENARIOS["host-names"])  # the new server certificate is issued by the killed render
    old_tree, old_state = _tree(start), _state_file(start).read_bytes()

    rng = random.Random(7)
    kills: list[tuple[str, float]] = [("step", 1), ("step", 8), ("step", 14), ("time", rng.uniform(0.5, 2.5))]
    for kind, at in kills:
        repo = scratch / f"{kind}-{at}"
        shutil.copytree(start, repo)
        if kind == "step":
            proc = _cli(repo, env={_crashpoint.ENV: str(int(at))})
            assert proc.returncode == -signal.SIGKILL, (at, proc.returncode, proc.stderr)
        else:
            p = subprocess.Popen([FEDGEN, "render", str(repo / SPEC), "--repo", str(repo)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(at)
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
        state = _state_file(repo).read_bytes()
        StateDocument.from_bytes(state, "state")
        recover(repo)
        tree = _tree(repo)
        if state == old_state:
            assert tree == old_tree, (kind, at)
        else:
            # The killed render saved its state (with its new server certificate): the tree is the old one or
            # exactly what that render was writing, which a check render from that state reproduces.
            if tree != old_tree:
                assert api.render(spec=repo / SPEC, repo=repo, check=True).plan.is_noop, (kind, at)
        # The next render (which recovers first) finishes the job; nothing drifts afterwards.
        again = _cli(repo)
        assert again.returncode == 0, again.stderr
        assert api.render(spec=repo / SPEC, repo=repo, check=True).plan.is_noop
        assert _tree(repo) != old_tree  # the server certificate (in the kit ConfigMap) is the new one


# ---------------------------------------------------------------------------------------------------------
# State updates killed at random moments


def test_state_save_killed_at_random_moments_leaves_old_or_new(tmp_path: Path) -> None:
    from fedgen.state.local import LocalStore

    rng = random.Random(11)

    def document(tag: str) -> StateDocument:
        # Large enough (~2 MB) that a save takes a while and a kill lands inside it.
        return StateDocument(project="p", nvflare_cert={f"site{i}": {"cert": tag * 2000, "pri_key": tag * 2000} for i in range(500)})

    docs = [document("a"), document("b")]
    data = [d.to_bytes() for d in docs]
    store = LocalStore(tmp_path / "state")
    store.save(docs[0])
    t = time.perf_counter()
    store.save(docs[1])
    store.save(docs[0])
    save_seconds = (time.perf_counter() - t) / 2
    current = 0
    outcomes = {"old": 0, "new": 0}
    for trial in range(50):
        target = 1 - current
        pid = os.fork()
        if pid == 0:
            try:
                LocalStore(tmp_path / "state").save(docs[target])
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, save_seconds * 1.5))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        on_disk = (tmp_path / "state" / "state.json").read_bytes()
        assert on_disk in (data[current], data[target]), f"trial {trial}: a partial state document"
        StateDocument.from_bytes(on_disk, "state")
        outcomes["new" if on_disk == data[target] else "old"] += 1
        current = data.index(on_disk)
    # A later save removes what killed saves left behind.
    store.save(docs[1 - current])
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["state.json"]
    assert (tmp_path / "state" / "state.json").stat().st_mode & 0o777 == 0o600
    print(f"state saves killed: {outcomes}")


def test_a_journal_whose_staged_file_vanished_stops_instead_of_mixing(template: Path, scratch: Path) -> None:
    """Roll-forward skips a move whose staged file is gone only when the target already has the new content
    (a move done before a crash); otherwise it stops with an error naming the file, leaving the tree alone."""
    from fedgen import api
    from fedgen.errors import ExternalError
    from fedgen.write import apply as apply_mod
    from fedgen.write import recover

    repo = scratch / "repo"
    shutil.copytree(template, repo)
    _write_spec(repo, SCENARIOS["ports"])
    old_tree = _tree(repo)
    real_replace = os.replace

    def stop_at_commit(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if str(dst).endswith("journal.json"):
            raise SystemExit("stopped right after the commit point")

    apply_mod.os.replace = stop_at_commit  # type: ignore[assignment]
    try:
        with pytest.raises(SystemExit):
            api.render(spec=repo / SPEC, repo=repo)
    finally:
        apply_mod.os.replace = real_replace  # type: ignore[assignment]
    journal = json.loads((repo / ".fedgen" / "journal.json").read_text())
    first_src, first_dst = journal["moves"][0][:2]
    (repo / first_src).unlink()  # the staged copy is lost (someone deleted .fedgen/tmp by hand, say)
    with pytest.raises(ExternalError, match=f"staged new content of {re.escape(first_dst)} is missing"):
        recover(repo)

    def outside_fedgen(tree: dict[str, bytes]) -> dict[str, bytes]:
        return {p: d for p, d in tree.items() if not p.startswith(".fedgen/")}

    assert outside_fedgen(_tree(repo)) == outside_fedgen(old_tree)  # no file of the new tree moved in


# ---------------------------------------------------------------------------------------------------------
# Temporary key folders: gone on SIGTERM and SIGINT, swept by the next run after SIGKILL


def _key_env(tmp: Path, point: str, marker: Path, **extra: str) -> dict[str, str]:
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), _crashpoint.PAUSE_ENV: f"{point}:{marker}", **extra}


def _start_paused(args: list[str], env: dict[str, str], marker: Path) -> tuple[subprocess.Popen[str], int]:
    """Start `fedgen ARGS`; return it and the pid of the process that paused at the chosen point."""
    proc = subprocess.Popen([FEDGEN, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text():
            return proc, int(marker.read_text())
        if proc.poll() is not None:
            pytest.fail(f"fedgen {args[0]} ended ({proc.returncode}) before the pause point: {proc.communicate()[1]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the pause point was never reached")


def _files_with_keys(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes())


def _key_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("fedgen-keys-"))


def _rendered_repo(write_spec: Callable[..., Path], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    from click.testing import CliRunner

    from fedgen.cli import main

    spec = write_spec(edit)
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(spec.parent.parent)])
    assert result.exit_code == 0, result.output
    return spec


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 3)])  # Ctrl-C: "interrupted", exit 3 (codes stay within 0-3)
def test_a_stopped_render_leaves_no_key_in_the_temporary_folder(write_spec: Callable[..., Path], tmp_path: Path, signum: int, status: int) -> None:
    spec = write_spec()
    repo, tmp, marker = spec.parent.parent, tmp_path / "tmp", tmp_path / "paused"
    proc, pid = _start_paused(["render", str(spec), "--repo", str(repo)], _key_env(tmp, "provision", marker), marker)
    assert pid == proc.pid
    (folder,) = _key_folders(tmp)
    assert folder.startswith(f"fedgen-keys-provision-{pid}-")
    assert _files_with_keys(tmp / folder)  # NVFlare's new root CA key and every participant's, right there
    os.kill(pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert _key_folders(tmp) == [] and _files_with_keys(tmp) == []
    assert not (repo / ".fedgen/state/genomics/state.json").exists()


def test_a_provisioning_worker_stopped_by_sigterm_leaves_no_key(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    _rendered_repo(write_spec)

    def more_sites(data: dict[str, Any]) -> None:
        data["spec"]["sites"] += [{"name": "site-c", "org": "hospital_c"}, {"name": "site-d", "org": "hospital_d"}]

    spec = write_spec(more_sites)
    repo, tmp, marker = spec.parent.parent, tmp_path / "tmp", tmp_path / "paused"
    env = _key_env(tmp, "provision", marker, FEDGEN_PROVISION_WORKERS="2")
    proc, pid = _start_paused(["render", str(spec), "--repo", str(repo)], env, marker)
    assert pid != proc.pid  # a worker: the state already has its root CA and server, so workers issue first
    assert any(name.startswith(f"fedgen-keys-provision-{pid}-") for name in _key_folders(tmp))
    assert _files_with_keys(tmp)  # the worker got the root CA key (over stdin) and NVFlare wrote it out
    os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3 and "provisioning worker" in err, err
    assert _key_folders(tmp) == [] and _files_with_keys(tmp) == []


def test_enroll_approve_stopped_by_sigterm_leaves_no_root_ca_key(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = _rendered_repo(write_spec, with_request_site)
    repo, tmp, marker = spec.parent.parent, tmp_path / "tmp", tmp_path / "paused"
    request = tmp_path / "site-c.request.zip"
    request.write_bytes(zip_bytes(craft_request()))
    args = ["enroll", "approve", str(request), "--spec", str(spec), "--repo", str(repo)]
    proc, pid = _start_paused(args, _key_env(tmp, "approve", marker, HOME=str(tmp_path)), marker)
    (folder,) = _key_folders(tmp)
    assert folder.startswith(f"fedgen-keys-approve-{pid}-") and (tmp / folder / "ca/rootCA.key").is_file()
    os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert _key_folders(tmp) == [] and _files_with_keys(tmp) == []
    assert not (repo / "enrollment").exists()


def test_a_bundle_stopped_while_staged_leaves_no_key(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = _rendered_repo(write_spec)
    out, tmp, marker = tmp_path / "out", tmp_path / "tmp", tmp_path / "paused"
    out.mkdir()
    args = ["client-bundle", "site-a", "--spec", str(spec), "--repo", str(spec.parent.parent), "--out", str(out / "site-a.tar.gz")]
    proc, pid = _start_paused(args, _key_env(tmp, "bundle", marker), marker)
    assert [p.name for p in out.iterdir()] == [f".site-a.tar.gz.{pid}.tmp"]  # the archive, key inside, staged
    os.kill(pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert list(out.iterdir()) == [] and _key_folders(tmp) == []


def test_key_folders_of_a_killed_run_are_swept_by_the_next_run(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec()
    repo, tmp, marker = spec.parent.parent, tmp_path / "tmp", tmp_path / "paused"
    env = _key_env(tmp, "provision", marker)
    proc, pid = _start_paused(["render", str(spec), "--repo", str(repo)], env, marker)
    os.kill(pid, signal.SIGKILL)  # no chance to clean up
    proc.communicate(timeout=60)
    (left,) = _key_folders(tmp)
    assert _files_with_keys(tmp / left)
    # A key folder of a process that still runs is never swept.
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live_folder = tmp / f"fedgen-keys-provision-{alive.pid}-live"
        live_folder.mkdir(mode=0o700)
        env.pop(_crashpoint.PAUSE_ENV)
        swept = subprocess.run([FEDGEN, "schema"], env=env, capture_output=True, text=True, timeout=120)
        assert swept.returncode == 0, swept.stderr
        assert _key_folders(tmp) == [live_folder.name] and _files_with_keys(tmp) == []
    finally:
        alive.kill()
        alive.wait()
