"""A worker process of NVFlare provisioning: `python -m fedgen.provision.worker`.

It imports NVFlare first, then reads one JSON request line on stdin and writes one JSON reply on stdout:
- parallel certificate issuance (see fedgen.provision.core): {"roster", "group", "base"} ->
  {"entries": {name: cert.json entry}} or {"error": message};
- the kit files that need no key, for validate (see fedgen.provision.static): {"task": "static-kits",
  "requests": [...]} -> {"kits": [{name: {path: base64}} or {"error": message}, ...]}.
The caller keeps stdin open while the worker runs: the end of stdin before the reply means the caller is
gone, and the worker removes its temporary provisioning root (key material) and exits at once.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import threading
from typing import Any


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


def _static_kits(requests: list[Any]) -> list[dict[str, Any]]:
    from fedgen.errors import FedgenError
    from fedgen.provision.core import static_kits

    out: list[dict[str, Any]] = []
    for request in requests:
        try:
            kits = static_kits(request)
            out.append({name: {path: base64.b64encode(data).decode() for path, data in kit.items()} for name, kit in kits.items()})
        except FedgenError as exc:
            out.append({"error": str(exc)})
    return out


def main() -> int:
    # The reply goes to the original stdout; anything else that writes to fd 1 lands on stderr instead.
    reply_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from fedgen.errors import FedgenError
    from fedgen.provision.core import issue_group, preload_nvflare

    preload_nvflare()
    line = _read_line(0)
    _exit_when_caller_is_gone(0)

    try:
        request = json.loads(line)
        reply: dict[str, object]
        if isinstance(request, dict) and request.get("task") == "static-kits":
            reply = {"kits": _static_kits(list(request["requests"]))}
        else:
            reply = {"entries": issue_group(request)}
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
