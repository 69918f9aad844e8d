"""A worker process of parallel certificate issuance (see fedgen.provision.core): `python -m fedgen.provision.worker`.

Protocol: one JSON request line on stdin ({"roster", "group", "base"}), one JSON reply on stdout
({"entries": {name: cert.json entry}} or {"error": message}). The caller keeps stdin open while the worker
runs: the end of stdin before the reply means the caller is gone, and the worker removes its temporary
provisioning root (key material) and exits at once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading


# Set once the reply is out: the end of stdin after that is the caller's normal goodbye, not its death.
_replied = threading.Event()


def _exit_when_caller_is_gone(fd: int) -> None:
    def watch() -> None:
        while os.read(fd, 65536):  # raw reads: a daemon thread must not hold sys.stdin's lock at exit
            pass
        # End of input: the caller closed it or died.
        from fedgen.provision import core

        core.root_lock.acquire()  # never released: no new root is made before the exit below
        for _ in range(3):  # NVFlare may still be writing into it
            root = core.current_root
            if not root or not os.path.exists(root):
                break
            shutil.rmtree(root, ignore_errors=True)
        os._exit(0 if _replied.is_set() else 1)

    threading.Thread(target=watch, name="fedgen-caller-watch", daemon=True).start()


def _read_line(fd: int) -> bytes:
    """The request: everything up to the first newline (the caller sends nothing after it)."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        chunks.append(chunk)
        if not chunk or b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]


def main() -> int:
    # The reply goes to the original stdout; anything else that writes to fd 1 lands on stderr instead.
    reply_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    line = _read_line(0)
    _exit_when_caller_is_gone(0)

    from fedgen.errors import FedgenError
    from fedgen.provision.core import issue_group

    try:
        reply: dict[str, object] = {"entries": issue_group(json.loads(line))}
    except FedgenError as exc:
        reply = {"error": str(exc)}
    except Exception as exc:  # reported to the caller as one line
        reply = {"error": f"nvflare provisioning failed: worker: {type(exc).__name__}: {exc}"}
    reply_out.write(json.dumps(reply).encode())
    _replied.set()  # before the close: the caller may close our stdin the moment it sees the reply end
    reply_out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
