"""Test hooks for crash safety (tests/write/test_crash.py); inert unless their environment variables are set.

step(): the write phase of a render (the state save in fedgen.state.local, then fedgen.write.apply) calls it
after each filesystem operation. With FEDGEN_TEST_CRASH_AFTER=N in the environment, the N-th call kills the
process with SIGKILL, exactly as a power cut or `kill -9` would at that point.

pause(point): called where key material sits in a temporary place (fedgen.scratch). With
FEDGEN_TEST_PAUSE_AT=<point>:<marker file>, the first process to reach that point creates the marker file
(holding its pid) and waits for a signal, so a test can stop it right there (SIGTERM, SIGINT, SIGKILL).

reached(point): called where a process starts waiting for another (the repo's write lock). With
FEDGEN_TEST_REACHED=<point>:<marker file>, the first process to get there creates the marker file (holding its
pid) and goes on, so a test can wait for that moment instead of sleeping.
Without the variables, the hooks only read the environment.
"""

from __future__ import annotations

import os
import signal

ENV = "FEDGEN_TEST_CRASH_AFTER"
PAUSE_ENV = "FEDGEN_TEST_PAUSE_AT"
REACHED_ENV = "FEDGEN_TEST_REACHED"
_done = 0


def step() -> None:
    global _done
    limit = os.environ.get(ENV)
    if not limit:
        return
    _done += 1
    if _done >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def pause(point: str) -> None:
    if _mark(PAUSE_ENV, point):
        while True:
            signal.pause()


def reached(point: str) -> None:
    _mark(REACHED_ENV, point)


def _mark(env: str, point: str) -> bool:
    """Create the marker file `env` names for `point`, holding this pid; False when another process did first."""
    name, _, marker = os.environ.get(env, "").partition(":")
    if name != point or not marker:
        return False
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True
