"""A test hook for crash safety (tests/test_crash.py); inert unless FEDGEN_TEST_CRASH_AFTER is set.

The write phase of a render (the state save in fedgen.state.local, then fedgen.write.apply) calls step()
after each filesystem operation. With FEDGEN_TEST_CRASH_AFTER=N in the environment, the N-th call kills the
process with SIGKILL, exactly as a power cut or `kill -9` would at that point. Without the variable, step()
only reads the environment.
"""

from __future__ import annotations

import os
import signal

ENV = "FEDGEN_TEST_CRASH_AFTER"
_done = 0


def step() -> None:
    global _done
    limit = os.environ.get(ENV)
    if not limit:
        return
    _done += 1
    if _done >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)
