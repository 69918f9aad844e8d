"""The admin's side of the end-to-end test: NVFlare's FLARE API, driven over stdin/stdout, one JSON per line.

    ip netns exec ADMIN_NS python admin_driver.py USERNAME ADMIN_KIT_DIR

It runs inside the admin's network namespace (where /etc/hosts maps the server's name), so the FLARE API
dials exactly what fed_admin.json says. Requests: {"cmd": ..., ...}; replies: {"ok": true, "result": ...} or
{"ok": false, "error": ...}. NVFlare's own prints go to stderr (the driver's log), never into the replies.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any


def main() -> int:
    username, kit = sys.argv[1], sys.argv[2]
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed by nvflare goes to the log
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    session: Any = None

    def login(timeout: float) -> dict:
        nonlocal session
        start = time.monotonic()
        deadline = start + timeout
        attempts, last = 0, ""
        while time.monotonic() < deadline:
            attempts += 1
            try:
                session = new_secure_session(username, kit, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                return {"seconds": time.monotonic() - start, "attempts": attempts}
            except Exception as exc:  # noqa: BLE001 - not ready yet: retry until the deadline
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.3)
        raise TimeoutError(f"no admin session within {timeout} s after {attempts} attempts; last error: {last}")

    def system_info() -> dict:
        info = session.get_system_info()
        return {
            "server_status": info.server_info.status,
            "clients": sorted(c.name for c in info.client_info),
            "jobs": [j.job_id for j in info.job_info],
        }

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        cmd = request.pop("cmd")
        try:
            if cmd == "login":
                result = login(float(request["timeout"]))
            elif cmd in ("close", "exit"):
                if session is not None:
                    try:
                        session.close()
                    except Exception:  # noqa: BLE001 - after shutdown the session is already gone
                        pass
                    session = None
                result = None
            elif session is None:
                raise RuntimeError(f"{cmd}: not logged in")
            elif cmd == "system_info":
                result = system_info()
            elif cmd == "submit":
                result = session.submit_job(request["job"])
            elif cmd == "monitor":
                code, meta = session.monitor_job_and_return_job_meta(
                    request["job_id"], timeout=float(request["timeout"]), poll_interval=float(request.get("poll", 1.0))
                )
                result = {"code": getattr(code, "name", str(code)), "meta": meta}
            elif cmd == "download":
                result = session.download_job_result(request["job_id"], destination=request.get("destination"))
            elif cmd == "list_jobs":
                result = session.list_jobs(detailed=True)
            elif cmd == "shutdown":
                # wait=False: the test watches the processes themselves; NVFlare's own wait polls the server
                # with reconnect attempts and returns anywhere between 0 and 25 s after everything is gone.
                wait = bool(request.get("wait", False))
                kwargs = {"timeout": float(request["timeout"])} if wait else {}
                result = session.shutdown(request.get("target", "all"), client_names=request.get("clients"), wait=wait, **kwargs)
            else:
                raise ValueError(f"unknown command {cmd!r}")
            reply: dict[str, Any] = {"ok": True, "result": result}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the test
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply, default=str) + "\n")
        if cmd == "exit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
