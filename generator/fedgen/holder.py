"""Who holds something (a state lock, a key folder): host, pid, user and command; and whether a pid lives."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
import uuid
from typing import Any

# The command line is recorded for people reading a lock; capped so a long argument list stays one line.
_MAX_COMMAND = 200


def current_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid {os.geteuid()}"


def current_command() -> str:
    words = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "fedgen", *sys.argv[1:]]
    text = " ".join(shlex.quote(w) for w in words).replace("\n", " ")
    return text if len(text) <= _MAX_COMMAND else text[: _MAX_COMMAND - 1] + "…"


def holder_record() -> dict[str, Any]:
    """host, pid, user, command, since (UTC ISO 8601) and a random id telling two holders apart."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": current_user(),
        "command": current_command(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "id": uuid.uuid4().hex,
    }


def describe_holder(record: dict[str, Any] | None) -> str:
    """'pid 12 on host-a since <time> (alice: fedgen render spec.yaml)'; older records lack user and command."""
    if not record:
        return "an unknown process"
    text = f"pid {record.get('pid', '?')} on {record.get('host', '?')} since {record.get('since', '?')}"
    who = ": ".join(str(record[k]) for k in ("user", "command") if record.get(k))
    return f"{text} ({who})" if who else text


def on_this_host(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("host") == socket.gethostname()


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid runs on this host (another user's process counts as alive)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
