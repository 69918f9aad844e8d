"""Run the tools validate drives (kubectl kustomize, kubeconform) on a hostile repository without handing
them the runner: a minimal environment (no CI variables, no cloud credentials), a temporary HOME removed
afterwards, no network (a private network namespace when `unshare` can make one as the current user,
probed once per process; otherwise proxies pointing at a dead local port and git refusing every protocol),
a timeout, and a cap on what the tool may print.

The kustomization guard (kustomization.py) keeps URLs and paths out of the repo from ever reaching
kustomize; this is the second line, for whatever the guard did not foresee.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedgen.errors import ExternalError

# Nothing listens on the discard port of the loopback address: a proxied request fails at once. Go's HTTP
# client never proxies loopback hosts, so this stops remote hosts only; the private network namespace (no
# interface up) stops everything.
DEAD_PROXY = "http://127.0.0.1:9"
SAFE_PATH = "/usr/bin:/bin"
STDERR_KEEP = 64 * 1024  # what is kept of a tool's complaints


@dataclass(frozen=True)
class Ran:
    returncode: int | None  # None: killed (timeout or output cap)
    stdout: bytes
    stderr: str  # the first STDERR_KEEP bytes, decoded
    timed_out: bool = False
    too_large: bool = False


def sandbox_env(home: Path) -> dict[str, str]:
    """The whole environment a sandboxed tool gets: nothing of the runner's."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": str(home),
        "TMPDIR": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C",
        # git (a kustomize remote base) may use no protocol and read no configuration
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "protocol.allow",
        "GIT_CONFIG_VALUE_0": "never",
        "GIT_ALLOW_PROTOCOL": "",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": "false",
    }
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[var] = DEAD_PROXY
    return env


@functools.cache
def network_isolation() -> tuple[str, ...]:
    """The command prefix that runs a program in a private network namespace, or () when this machine does
    not let the current user make one (probed once per process: one fork)."""
    unshare = shutil.which("unshare", path=SAFE_PATH) or shutil.which("unshare")
    if unshare is None:
        return ()
    candidates: list[tuple[str, ...]] = [(unshare, "--net", "--")] if os.geteuid() == 0 else []
    candidates.append((unshare, "--net", "--map-root-user", "--"))
    for prefix in candidates:
        try:
            probe = subprocess.run(  # noqa: S603 - fixed arguments
                [*prefix, "true"], capture_output=True, timeout=10, check=False, env={"PATH": SAFE_PATH}
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return ()


def run_sandboxed(command: Sequence[str], *, cwd: Path, timeout: float, max_stdout: int, isolate: bool = True) -> Ran:
    """Run a tool as described above; stdout is read up to max_stdout bytes (more kills the tool)."""
    prefix = network_isolation() if isolate else ()
    with tempfile.TemporaryDirectory(prefix="fedgen-sandbox-") as home:
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [*prefix, *command],
                cwd=cwd,
                env=sandbox_env(Path(home)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill takes whatever it started too
            )
        except OSError as exc:
            raise ExternalError(f"{Path(command[0]).name} could not be started ({command[0]}): {exc}") from None
        return _collect(proc, timeout, max_stdout)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _collect(proc: subprocess.Popen[bytes], timeout: float, max_stdout: int) -> Ran:
    assert proc.stdout is not None and proc.stderr is not None
    stderr = bytearray()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        _kill_group(proc)

    def drain_stderr() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read(65536):
            if len(stderr) < STDERR_KEEP:
                stderr.extend(chunk[: STDERR_KEEP - len(stderr)])

    timer = threading.Timer(timeout, kill)
    reader = threading.Thread(target=drain_stderr, daemon=True)
    timer.start()
    reader.start()
    out = bytearray()
    too_large = False
    try:
        while chunk := proc.stdout.read(1024 * 1024):
            if len(out) + len(chunk) > max_stdout:
                too_large = True
                _kill_group(proc)
                break
            out.extend(chunk)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        reader.join(timeout=10)  # the group is dead; only an escaped grandchild could hold stderr open
        proc.stdout.close()
        proc.stderr.close()
    timed_out = killed.is_set()
    code = None if (timed_out or too_large) else proc.returncode
    return Ran(code, bytes(out), stderr.decode("utf-8", "replace"), timed_out, too_large)
