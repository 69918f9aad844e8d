"""A worker process of NVFlare provisioning: `python -m fedgen.provision.worker`.

It imports NVFlare first, then reads one JSON request line on stdin and writes JSON lines on stdout, the
last one its reply:
- parallel certificate issuance (see fedgen.provision.runner): {"roster", "group", "base"[, "batch"]} ->
  {"entries": {name: cert.json entry}} or {"error": message}; with "batch": n the group is issued n at a
  time and each batch is followed by a line {"progress": certificates issued so far};
- the kit files that need no key, for validate (see fedgen.provision.static): {"task": "static-kits",
  "requests": [...]} -> {"kits": [{name: {path: base64}} or {"error": message}, ...]}.
The caller keeps stdin open while the worker runs: the end of stdin before the reply means the caller is
gone, and the worker removes its temporary provisioning root (key material) and exits at once with status 1.
Once the reply is out, the worker exits 0 whatever happens to stdin.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import threading
from typing import IO, Any

from fedgen.provision.lighter import RootWatch


def _exit_when_caller_is_gone(fd: int, watch: RootWatch, replied: threading.Event) -> None:
    def watch_input() -> None:
        while os.read(fd, 65536):  # raw reads: a daemon thread must not hold sys.stdin's lock at exit
            pass
        # End of input: the caller closed it (after the reply: its normal goodbye) or died.
        watch.lock.acquire()  # never released: no new root is made before the exit below
        for _ in range(3):  # NVFlare may still be writing into it
            root = watch.current
            if not root or not os.path.exists(root):
                break
            shutil.rmtree(root, ignore_errors=True)
        os._exit(0 if replied.is_set() else 1)

    threading.Thread(target=watch_input, name="fedgen-caller-watch", daemon=True).start()


def _read_line(fd: int) -> bytes:
    """The request: everything up to the first newline (the caller sends nothing after it)."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        chunks.append(chunk)
        if not chunk or b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]


def _write_line(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def _issue(request: dict[str, Any], watch: RootWatch, out: IO[bytes]) -> dict[str, Any]:
    from fedgen.provision.lighter import issue_group
    from fedgen.provision.roster import Roster

    roster = Roster.from_json(request["roster"])
    group = [str(n) for n in request["group"]]
    batch = request.get("batch")
    size = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 else len(group) or 1
    entries: dict[str, Any] = {}
    for start in range(0, len(group), size):
        entries.update(issue_group(roster, group[start : start + size], request["base"], watch))
        if batch is not None:
            _write_line(out, {"progress": len(entries)})
    return entries


def _static_kits(requests: list[Any], watch: RootWatch) -> list[dict[str, Any]]:
    from fedgen.errors import FedgenError
    from fedgen.provision.lighter import static_kits

    out: list[dict[str, Any]] = []
    for request in requests:
        try:
            kits = static_kits(request, watch)
            out.append({name: {path: base64.b64encode(data).decode() for path, data in kit.items()} for name, kit in kits.items()})
        except FedgenError as exc:
            out.append({"error": str(exc)})
    return out


def main() -> int:
    # The reply goes to the original stdout; anything else that writes to fd 1 lands on stderr instead.
    reply_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from fedgen.errors import FedgenError
    from fedgen.provision.lighter import preload

    preload()
    line = _read_line(0)
    watch, replied = RootWatch(), threading.Event()
    _exit_when_caller_is_gone(0, watch, replied)

    try:
        request = json.loads(line)
        reply: dict[str, object]
        if isinstance(request, dict) and request.get("task") == "static-kits":
            reply = {"kits": _static_kits(list(request["requests"]), watch)}
        else:
            reply = {"entries": _issue(request, watch, reply_out)}
    except FedgenError as exc:
        reply = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the caller as one line
        reply = {"error": f"nvflare provisioning failed: worker: {type(exc).__name__}: {exc}"}
    reply_out.write(json.dumps(reply).encode() + b"\n")
    replied.set()  # before the close: the caller may close our stdin the moment it sees the reply end
    reply_out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
