"""The startup-kit files NVFlare makes without a key, for `fedgen validate`'s re-render (no state needed).

A kit is what NVFlare's StaticFileBuilder writes (fed_server.json or fed_client.json, local/*.default, the
scripts) plus what its CertBuilder adds (certificate_files: the root CA, the participant's certificate and
key). validate renders with stand-ins for the latter and with NVFlare's own output for the former, computed
in a worker process (fedgen.provision.worker) that validate starts before it needs it, so NVFlare's import
(~0.7 s) runs beside the kustomize builds instead of in validate's process. Answers are kept per process by
their exact input (roster and nvflare version): repeated validations of one spec run NVFlare once.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError
from fedgen.nvflare_version import installed_nvflare_version
from fedgen.provision.policy import check_names
from fedgen.provision.roster import Roster

if TYPE_CHECKING:
    from fedgen.spec.model import Federation

TIMEOUT = 120  # seconds for NVFlare's import and its static files, however loaded the machine
_CACHE_SIZE = 64
Kits = dict[str, dict[str, bytes]]  # participant -> kit path -> bytes
_ANSWERS: dict[str, Kits | str] = {}  # request key -> kits, or why NVFlare could not make them
_HINTS: dict[str, str] = {}  # a caller's hint (e.g. a spec file's digest) -> the request key it led to


def certificate_files(server: bool) -> tuple[str, ...]:
    """The kit files CertBuilder adds for a server or a client (tests compare with a real provisioning)."""
    kind = "server" if server else "client"
    return ("startup/rootCA.pem", f"startup/{kind}.crt", f"startup/{kind}.key")


def static_request(federation: Federation) -> dict[str, Any]:
    """What StaticKits needs for the server's and the site-cluster sites' kits: only those in the roster,
    since neither kit depends on the other participants (tested), so the request is a stable cache key."""
    check_names(federation)
    sites = federation.cluster_sites
    members = tuple(("client", s.name, s.org, None) for s in sites)
    roster = Roster(project=federation.name, server=Roster.of(federation).server, members=members)
    return {"roster": roster.to_json(), "names": [federation.server.name, *(s.name for s in sites)]}


def request_key(request: Mapping[str, Any]) -> str:
    text = json.dumps({"nvflare": installed_nvflare_version(), "request": request}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class StaticKits:
    """NVFlare's static kit files for a few requests (static_request), from one worker process.

    hints: what the caller will ask about (any strings that identify its input); the worker starts at once
    unless every hint was answered before in this process. Use as a context manager."""

    def __init__(self, hints: Iterable[str]) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.failure: str | None = None  # why the worker could not start (get() raises it)
        self.timer: threading.Timer | None = None  # kills a worker asked and too slow to answer
        if any(_HINTS.get(h) not in _ANSWERS for h in hints):
            self._start()

    def _start(self) -> None:
        from fedgen.provision import runner

        try:
            self.proc = runner.spawn_worker()
        except OSError as exc:
            self.failure = f"cannot start an NVFlare worker process ({exc})"

    def get(self, asked: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Kits | str]:
        """For each (hint, request): the kits, or one line saying why NVFlare could not make them.
        Raises ExternalError when the worker process fails."""
        return self.ask(asked)()

    def ask(self, asked: Iterable[tuple[str, Mapping[str, Any]]]) -> Callable[[], list[Kits | str]]:
        """Send the requests to the worker now (it works on them while the caller does something else);
        the function returned waits for the answers (get's). Raises ExternalError when the worker cannot
        be asked; so may the function."""
        asked = list(asked)
        keys = [request_key(request) for _, request in asked]
        found = {k: _ANSWERS[k] for k in keys if k in _ANSWERS}
        todo = {k: request for k, (_, request) in zip(keys, asked) if k not in found}
        receive = self._send(list(todo.values())) if todo else None

        def answers() -> list[Kits | str]:
            if receive is not None:
                found.update(zip(todo, receive()))
                if len(_ANSWERS) + len(todo) > _CACHE_SIZE:
                    _ANSWERS.clear()
                    _HINTS.clear()
                _ANSWERS.update((k, found[k]) for k in todo)
            for key, (hint, _) in zip(keys, asked):
                _HINTS[hint] = key
            return [found[k] for k in keys]

        return answers

    def _send(self, requests: list[Mapping[str, Any]]) -> Callable[[], list[Kits | str]]:
        if self.proc is None and self.failure is None:
            self._start()
        if self.failure is not None:
            raise ExternalError(self.failure)
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        # stdin stays open until the reply is read: its end tells the worker that this process is gone.
        self.timer = threading.Timer(TIMEOUT, proc.kill)
        self.timer.start()
        try:
            proc.stdin.write(json.dumps({"task": "static-kits", "requests": requests}).encode() + b"\n")
            proc.stdin.flush()
        except OSError as exc:
            self.timer.cancel()
            raise ExternalError(f"the NVFlare worker process failed ({exc})") from None
        return lambda: self._receive(proc, len(requests))

    def _receive(self, proc: subprocess.Popen[bytes], count: int) -> list[Kits | str]:
        assert proc.stdout is not None and self.timer is not None
        try:
            # The reply is one line: read up to its end, not to the worker's exit (which close() waits for).
            out = proc.stdout.readline()
        except OSError as exc:
            raise ExternalError(f"the NVFlare worker process failed ({exc})") from None
        finally:
            self.timer.cancel()
        if not out.endswith(b"\n") and proc.wait() < 0:
            raise ExternalError(f"NVFlare did not make the static kit files within {TIMEOUT}s")
        try:
            reply = json.loads(out)
        except ValueError:
            reply = None
        kits = reply.get("kits") if isinstance(reply, dict) else None
        if not isinstance(kits, list) or len(kits) != count:
            reason = reply.get("error") if isinstance(reply, dict) else None
            raise ExternalError(str(reason or f"the NVFlare worker process gave no answer (exit {proc.returncode})"))
        return [_decoded(k) for k in kits]

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()  # a worker never asked sees the end of its input and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> StaticKits:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _decoded(answer: Any) -> Kits | str:
    if isinstance(answer, dict) and "error" in answer:
        return str(answer["error"])
    return {str(name): {str(p): base64.b64decode(d) for p, d in kit.items()} for name, kit in answer.items()}
