"""A worker process of NVFlare provisioning: `python -m fedgen.provision.worker`.

It imports NVFlare first, then reads one JSON request line on stdin and writes JSON lines on stdout, the
last one its reply:
- parallel certificate issuance (see fedgen.provision.runner): {"roster", "group", "base"[, "batch"]} ->
  {"entries": {name: cert.json entry}} or {"error": message}; with "batch": n the group is issued n at a
  time and each batch is followed by a line {"progress": certificates issued so far};
- the kit files that need no key, for validate (see fedgen.provision.static): {"task": "static-kits",
  "requests": [...]} -> {"kits": [{name: {path: base64}} or {"error": message}, ...]}.
The caller keeps stdin open while the worker runs: the end of stdin before the reply means the caller is
gone, and the worker removes its temporary provisioning root (key material) and exits at once with status 1,
sending no reply. Once the reply is out, the worker exits 0 whatever happens to stdin.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sys
import threading
from typing import IO, Any

from fedgen.provision.lighter import RootWatch

# How long the watcher waits for the main thread to act on its signal before it cleans up itself: only a main
# thread stuck in one long call (no Python step for this long) gets there.
_SIGNAL_GRACE_SECONDS = 30.0


def _exit_when_caller_is_gone(fd: int, watch: RootWatch, replied: threading.Event) -> None:
    """Start the watcher: at the end of stdin before the reply, remove the private root and exit 1.

    The removal runs in the main thread, in a signal handler: between two Python steps of NVFlare (which runs
    in the main thread), so nothing writes into the root while it goes and nothing can make it again (a removal
    from the watcher thread raced NVFlare's os.makedirs, which made the root again)."""

    def on_caller_gone(signum: int, frame: object) -> None:
        root = watch.current
        if root:
            shutil.rmtree(root, ignore_errors=True)
        os._exit(1)

    signal.signal(signal.SIGUSR1, on_caller_gone)

    def watch_input() -> None:
        while os.read(fd, 65536):  # raw reads: a daemon thread must not hold sys.stdin's lock at exit
            pass
        # End of input: the caller closed it (after the reply: its normal goodbye) or died. Held for good from
        # here: no new root is made, and no reply is sent (main() sends it under this lock), so the status
        # says which came first.
        watch.lock.acquire()
        if replied.is_set():
            os._exit(0)
        os.kill(os.getpid(), signal.SIGUSR1)
        threading.Event().wait(_SIGNAL_GRACE_SECONDS)
        root = watch.current
        if root:
            shutil.rmtree(root, ignore_errors=True)
        os._exit(1)

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
    with watch.lock:  # held for good by the watcher once the caller is gone: then this waits for its exit
        reply_out.write(json.dumps(reply).encode() + b"\n")
        replied.set()  # before the close: the caller may close our stdin the moment it sees the reply end
    reply_out.close()
    return 0


if __name__ == "__main__":
    status = main()
    # The reply is out and the private root is gone: nothing is left to clean, so the worker ends without the
    # interpreter's teardown of NVFlare's modules (~30 ms its caller would wait for).
    sys.stderr.flush()
    os._exit(status)
