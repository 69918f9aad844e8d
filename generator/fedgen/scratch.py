"""Private temporary folders for key material, gone even when the process is stopped.

Provisioning roots (NVFlare writes the root CA key and every new key there), the CA folder of
`enroll approve` and the staging file of a bundle hold keys for a moment. Each is:
- owner-only (mkdtemp makes folders 0700);
- removed when its work ends, on success or error;
- removed on SIGINT and SIGTERM: a handler (installed from the main thread while such a path exists)
  deletes every registered path, then lets the signal do what it did before (KeyboardInterrupt for SIGINT,
  death by SIGTERM), so exit statuses do not change;
- swept by the next run when its process died without a chance to clean up (SIGKILL, power cut): folders
  are named <tmp>/fedgen-keys-<kind>-<pid>-<random>, and `sweep()` removes those of this user whose pid no
  longer runs. A live pid (even a reused one) keeps its folder: a sweep never races a running command.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fedgen.holder import pid_alive

PREFIX = "fedgen-keys-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}[a-z]+-(?P<pid>[0-9]+)-")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_registered: set[str] = set()
_guard = threading.Lock()
_previous: dict[int, Any] = {}  # signal -> the handler ours replaced
_swept = False


def make_dir(kind: str) -> str:
    """A new private folder <tmp>/fedgen-keys-<kind>-<pid>-XXXX, registered for removal on a signal."""
    global _swept
    if not _swept:
        _swept = True
        sweep()
    with _guard:
        path = tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-")
        _registered.add(path)
    _install_handlers()
    return path


def remove(path: str) -> None:
    """Delete a registered folder or file and forget it."""
    _delete(path)
    with _guard:
        _registered.discard(path)


@contextmanager
def private_dir(kind: str) -> Iterator[Path]:
    path = make_dir(kind)
    try:
        yield Path(path)
    finally:
        remove(path)


@contextmanager
def registered_file(path: Path) -> Iterator[Path]:
    """Remove `path` (a file being written with key material) if a signal stops the process meanwhile."""
    with _guard:
        _registered.add(str(path))
    _install_handlers()
    try:
        yield path
    finally:
        with _guard:
            _registered.discard(str(path))


def sweep(base: str | None = None) -> list[str]:
    """Remove key folders left by fedgen processes of this user that are gone; returns what was removed."""
    folder = base or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _delete(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _install_handlers() -> None:
    """Ours on SIGINT and SIGTERM, once per process; only the main thread may install signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        if signum in _previous:
            continue
        current = signal.getsignal(signum)
        if current in (signal.SIG_IGN, None):
            continue  # an ignored signal stops nothing, so nothing needs removing
        _previous[signum] = current
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    for _ in range(3):  # another thread may add or remove a path while we copy the set
        try:
            paths = list(_registered)
            break
        except RuntimeError:
            continue
    else:
        paths = []
    for path in paths:
        _delete(path)
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)  # e.g. Python's SIGINT handler: KeyboardInterrupt, unwinding as before
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
