"""Processes of the end-to-end federation: started in our namespaces, watched, stopped by the PIDs we hold.

Every long-running process is a Popen started with start_new_session=True (its PID is also its process
group). "Containers" (the server, each site) run under tests/e2e/podinit.py as PID 1 of their own PID
namespace, so whatever they spawn (NVFlare job processes call setsid) stays inside and is reported by podinit;
`Topology.pids()` (`ip netns pids`) is the second, independent check that nothing of ours is left.
Stopping: SIGTERM to podinit (found as the child of our Popen), then SIGKILL to our process group (unshare
and podinit; the kernel then kills the rest of the PID namespace). Never by name.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PODINIT = HERE / "podinit.py"
ADMIN_DRIVER = HERE / "admin_driver.py"
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_the_test() -> None:
    """preexec_fn: SIGKILL when the test process dies (even by SIGKILL), so nothing of ours outlives it.
    Survives exec of `ip` and `unshare`; `unshare --kill-child` passes it on to podinit, whose death ends
    its PID namespace."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


RUNTIME_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


@dataclass
class Started:
    label: str
    popen: subprocess.Popen[bytes]
    output: Path  # stdout+stderr of the process tree
    logs: list[Path] = field(default_factory=list)  # further logs (NVFlare's log.txt)
    report: Path | None = None  # podinit's report
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def read_report(self) -> dict[str, Any] | None:
        if self.report is None or not self.report.exists():
            return None
        return json.loads(self.report.read_text())

    def tails(self, lines: int = 40) -> str:
        parts = []
        for path in [self.output, *self.logs]:
            parts.append(f"----- {self.label}: last {lines} lines of {path} -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def terminate(self) -> None:
        """SIGTERM: podinit (PID 1 of the namespace, our Popen's child) forwards it to the command; a plain
        process gets it itself."""
        if self.popen.poll() is not None:
            return
        for pid in children_of(self.popen.pid) if self.report is not None else [self.popen.pid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL to our process group (unshare, podinit, the command); the kernel then ends the rest of the
        PID namespace with its PID 1."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, *, term_timeout: float = 10.0, kill_timeout: float = 10.0) -> str:
        """Stop what we started (no-op when it already exited); returns how."""
        return stop_all([self], term_timeout=term_timeout, kill_timeout=kill_timeout)[self.label]


def stop_all(processes: list[Started], *, term_timeout: float = 10.0, kill_timeout: float = 10.0) -> dict[str, str]:
    """SIGTERM to all, wait together, SIGKILL the rest: {label: exited | terminated | killed | still running}."""
    how = {p.label: "exited" for p in processes if not p.alive()}
    running = [p for p in processes if p.alive()]
    for p in running:
        p.terminate()
    for stage, timeout, action in (("terminated", term_timeout, Started.kill), ("killed", kill_timeout, None)):
        deadline = time.monotonic() + timeout
        for p in running:
            if p.label not in how and p.wait(max(0.0, deadline - time.monotonic())) is not None:
                how[p.label] = stage
        for p in running:
            if p.label not in how and action is not None:
                action(p)
    for p in running:
        how.setdefault(p.label, "still running")
    return how


def start_container(label: str, netns: str, plan: dict[str, Any], workdir: Path, *, logs: list[Path] | None = None) -> Started:
    """Run plan (see podinit.py) as PID 1 of new PID and mount namespaces inside network namespace netns."""
    workdir.mkdir(parents=True, exist_ok=True)
    plan_path = workdir / f"{label}.plan.json"
    plan = {**plan, "report": str(workdir / f"{label}.report.json")}
    plan_path.write_text(json.dumps(plan, indent=2))
    output = workdir / f"{label}.out"
    argv = [
        "ip", "netns", "exec", netns,
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
        "--", sys.executable, str(PODINIT), str(plan_path),
    ]  # fmt: skip
    with output.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=RUNTIME_ENV,
            start_new_session=True, preexec_fn=_die_with_the_test,
        )  # fmt: skip
    return Started(label, popen, output, list(logs or []), Path(plan["report"]))


class AdminClient:
    """The test's handle on tests/e2e/admin_driver.py running in the admin's namespace."""

    def __init__(self, netns: str, username: str, kit: Path, workdir: Path, env: dict[str, str]) -> None:
        output = workdir / "admin.out"
        self._out = output.open("wb")
        argv = ["ip", "netns", "exec", netns, sys.executable, str(ADMIN_DRIVER), username, str(kit)]
        popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._out, cwd=kit, env=env,
            start_new_session=True, preexec_fn=_die_with_the_test,
        )  # fmt: skip
        self.started = Started("admin", popen, output)
        self._buffer = b""

    def call(self, cmd: str, /, wait: float, **params: Any) -> Any:
        """Send one request; wait at most `wait` (+5 s slack) seconds for its reply; raise on error or silence."""
        popen = self.started.popen
        assert popen.stdin is not None and popen.stdout is not None
        if popen.poll() is not None:
            raise AssertionError(f"the admin driver exited ({popen.returncode}) before {cmd}")
        popen.stdin.write((json.dumps({"cmd": cmd, **params}) + "\n").encode())
        popen.stdin.flush()
        deadline = time.monotonic() + wait + 5
        fd = popen.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the admin driver did not answer {cmd} within {wait + 5:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"the admin driver exited during {cmd} ({popen.wait(5)})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        reply = json.loads(line)
        if not reply["ok"]:
            raise AdminError(f"{cmd}: {reply['error']}")
        return reply["result"]

    def exit(self, timeout: float = 10.0) -> None:
        popen = self.started.popen
        if popen.poll() is None:
            try:
                self.call("exit", timeout)
            except (AssertionError, OSError):
                pass
            if popen.stdin:
                try:
                    popen.stdin.close()
                except OSError:
                    pass
            if self.started.wait(timeout) is None:
                self.started.stop()
        self._out.close()


class AdminError(AssertionError):
    """The FLARE API reported an error."""
