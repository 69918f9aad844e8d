"""PID 1 of one end-to-end "container" (a process tree in its own PID, mount and network namespace).

    ip netns exec NS unshare --mount --propagation private --pid --fork --kill-child -- python podinit.py PLAN.json

Plays the parts of the container runtime (mounts), of the kubelet's security context (chroot, uid/gid,
supplementary groups, capabilities, no_new_privs, umask) and of an init process (`docker run --init`): it starts
the container's command as its only child, forwards SIGTERM/SIGINT/SIGHUP to it, reaps every orphan, and
when the command has exited waits `grace` seconds for the rest of the namespace to exit by itself. Whatever is
still alive then is a straggler: listed in the report (pid, command line) and killed. The report (JSON) is
written to PLAN["report"]; the exit status is the command's (128 + signal when killed by one).

Only the standard library: this file runs as root before any chroot, with whatever python started it.
The plan (written by tests/e2e/kube.py or tests/e2e/flow.py):
  mounts: [{op: tmpfs|bind|proc|mkdir|symlink|remount_ro, ...}] executed in order (see _mount)
  root:   chroot for the command, or null
  cwd:    working directory (inside root)
  user:   {uid, gid, groups, no_new_privs, drop_all_caps} or null (stay root)
  umask:  octal int
  argv:   the command; argv[0] is resolved on env PATH (inside root) when it has no slash
  env:    the command's whole environment
  grace:  seconds to wait for the rest of the namespace after the command exits
  report: host path of the JSON report
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def say(message: str) -> None:
    sys.stderr.write(f"[podinit] {message}\n")
    sys.stderr.flush()


def run(*argv: str) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"[podinit] {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")


def _mount(op: dict) -> None:
    kind = op["op"]
    if kind == "tmpfs":
        run("mount", "-t", "tmpfs", "-o", op.get("options", "mode=0755"), "tmpfs", op["target"])
    elif kind == "bind":
        run("mount", "--rbind" if op.get("recursive") else "--bind", op["source"], op["target"])
        flags = "remount,bind,ro" if op.get("readonly") else None
        if flags:
            run("mount", "-o", flags, op["target"])
    elif kind == "proc":
        run("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", op["target"])
    elif kind == "mkdir":
        os.makedirs(op["path"], exist_ok=True)
        os.chmod(op["path"], int(op.get("mode", 0o755)))
        if "owner" in op:
            os.chown(op["path"], *op["owner"])
    elif kind == "touch":
        with open(op["path"], "a"):
            pass
    elif kind == "symlink":
        os.symlink(op["target"], op["path"])
    elif kind == "remount_ro":
        run("mount", "-o", "remount,ro", op["target"])
    else:
        raise SystemExit(f"[podinit] unknown mount op {kind!r}")


def _resolve(argv0: str, env: dict, root: str | None) -> str:
    if "/" in argv0:
        return argv0
    for folder in env.get("PATH", "").split(":"):
        candidate = os.path.join(folder or ".", argv0)
        host = os.path.join(root, candidate.lstrip("/")) if root and candidate.startswith("/") else candidate
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return candidate
    raise SystemExit(f"[podinit] {argv0}: not found on PATH {env.get('PATH')!r}")


def _enter(plan: dict) -> None:
    """In the forked child, before exec: the container's view and identity."""
    if plan.get("root"):
        os.chroot(plan["root"])
    os.chdir(plan.get("cwd") or "/")
    os.umask(int(plan.get("umask", 0o022)))
    user = plan.get("user")
    if user:
        libc = ctypes.CDLL(None, use_errno=True)
        if user.get("drop_all_caps"):
            last = int(open("/proc/sys/kernel/cap_last_cap").read()) if os.path.exists("/proc/sys/kernel/cap_last_cap") else 40
            for cap in range(last + 1):
                libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        os.setgroups(list(user.get("groups", [])))
        os.setresgid(user["gid"], user["gid"], user["gid"])
        os.setresuid(user["uid"], user["uid"], user["uid"])  # clears permitted and effective capabilities
        if user.get("no_new_privs") and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")


def _others() -> list[int]:
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _reap() -> list[tuple[int, int]]:
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def main() -> int:
    with open(sys.argv[1]) as fh:
        plan = json.load(fh)
    report: dict = {"started": time.time(), "pid_in_namespace": os.getpid()}
    if os.getpid() != 1:
        say(f"warning: not PID 1 of a PID namespace (pid {os.getpid()}); stragglers cannot be tracked exactly")
    # /proc of this PID namespace (unshare --pid without --mount-proc keeps the parent's).
    run("mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    for op in plan.get("mounts", []):
        _mount(op)
    env = dict(plan["env"])
    argv = list(plan["argv"])
    exe = _resolve(argv[0], env, plan.get("root"))
    child = os.fork()
    if child == 0:
        try:
            for sig in FORWARDED:
                signal.signal(sig, signal.SIG_DFL)
            _enter(plan)
            os.execve(exe, argv, env)
        except BaseException as exc:  # noqa: BLE001 - report anything, never return into the parent's code
            os.write(2, f"[podinit] cannot start {argv!r}: {exc!r}\n".encode())
        finally:
            os._exit(127)

    def forward(signum: int, _frame: object) -> None:
        report.setdefault("forwarded", []).append(signal.Signals(signum).name)
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    report["command"] = argv
    status = None
    while status is None:
        try:
            pid, st = os.waitpid(-1, 0)  # the command or an orphan reparented to us
        except ChildProcessError:
            break
        if pid == child:
            status = st
    report["command_exited"] = time.time()
    code = os.waitstatus_to_exitcode(status) if status is not None else 255
    report["exit_code"] = code
    # The rest of the namespace (job processes started with setsid, ...) must leave by itself.
    deadline = time.monotonic() + float(plan.get("grace", 10))
    while True:
        _reap()
        alive = _others()
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    left = _others()
    report["stragglers"] = [{"pid": p, "cmdline": _cmdline(p)} for p in left]
    for pid in left:
        say(f"straggler still alive {plan.get('grace', 10)} s after the command exited, killing: {pid} {_cmdline(pid)}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 5
    while _others() and time.monotonic() < end:
        _reap()
        time.sleep(0.05)
    report["finished"] = time.time()
    tmp = plan["report"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, plan["report"])
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
