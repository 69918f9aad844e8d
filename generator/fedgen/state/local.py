"""State in a local folder: owner-only, one document replaced atomically, a lock file."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedgen._crashpoint import step as _crash_step  # test hook: inert unless FEDGEN_TEST_CRASH_AFTER is set
from fedgen.errors import ExternalError
from fedgen.state.document import StateDocument

DOCUMENT = "state.json"
LOCK = "lock"


class LocalStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def _ensure_dir(self) -> None:
        try:
            # Every folder fedgen creates on the way is owner-only too (mkdir(parents=True) would use the umask).
            for folder in reversed([self.path, *self.path.parents]):
                if not folder.exists():
                    folder.mkdir(mode=0o700)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            raise ExternalError(f"state folder {self.path}: {exc.strerror}") from None

    def load(self) -> StateDocument:
        doc = self.path / DOCUMENT
        try:
            data = doc.read_bytes()
        except FileNotFoundError:
            return StateDocument()
        except OSError as exc:
            raise ExternalError(f"state {doc}: {exc.strerror}") from None
        return StateDocument.from_bytes(data, str(doc))

    def save(self, document: StateDocument) -> None:
        self._ensure_dir()
        target = self.path / DOCUMENT
        tmp = self.path / f".{DOCUMENT}.{os.getpid()}.tmp"
        data = document.to_bytes()
        try:
            for stale in self.path.glob(f".{DOCUMENT}.*.tmp"):  # a copy left by a killed save (we hold the lock)
                stale.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _crash_step()
            os.replace(tmp, target)
            _crash_step()
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            _crash_step()
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ExternalError(f"state {target}: {exc.strerror}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An flock on <state>/lock; the file records who holds it, for the error message."""
        self._ensure_dir()
        lock_path = self.path / LOCK
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(lock_path)
                raise ExternalError(f"state {self.path} is locked by {holder}; retry when it finishes") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_holder_record()).encode(), 0)
            yield
        finally:
            os.close(fd)


def _holder_record() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _read_holder(lock_path: Path) -> str:
    try:
        rec = json.loads(lock_path.read_text())
        return f"pid {rec['pid']} on {rec['host']} since {rec['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
