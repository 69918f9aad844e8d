"""State in a local folder: owner-only, one document replaced atomically, a lock file.

Like ssh with its keys, a state that other users could read or write is refused (InputError, exit 2, with
the chmod command that fixes it) before anything is read or written: the folder, every file in it, and the
parent folders fedgen creates with it (`.fedgen/state` of the default location). They must also belong to
the user running fedgen. load() creates nothing and needs only read access; save() and lock() create the
folder (and missing parents) owner-only. backup() copies state.json to state.json.backup-<UTC time> in the
same folder (0600) before an irreversible step.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedgen._crashpoint import step as _crash_step  # test hook: inert unless FEDGEN_TEST_CRASH_AFTER is set
from fedgen.errors import ExternalError, InputError
from fedgen.holder import describe_holder, holder_record, on_this_host, pid_alive
from fedgen.state.document import StateDocument
from fedgen.state.store import Backup, backup_name
from fedgen.untrusted import loads_json

DOCUMENT = "state.json"
LOCK = "lock"
_OPEN_BITS = 0o077  # any access for group or others


class LocalStore:
    def __init__(self, path: Path, *, private_parents: int = 0) -> None:
        """private_parents: how many folders above `path` fedgen creates (and so checks) as owner-only."""
        self.path = path
        self.description = str(path)
        self._private_parents = private_parents

    def check_private(self) -> None:
        """Refuse (InputError) when the state folder, its files or the parents fedgen made are open to others
        or belong to another user. Missing paths are fine: nothing to protect yet."""
        folders = [self.path, *list(self.path.parents)[: self._private_parents]]
        try:
            files = sorted(p for p in self.path.iterdir()) if self.path.is_dir() else []
        except OSError as exc:
            raise ExternalError(f"state folder {self.path}: {exc.strerror}") from None
        open_paths: list[tuple[Path, int]] = []
        for path in [*reversed(folders), *files]:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ExternalError(f"state {path}: {exc.strerror}") from None
            if st.st_uid != os.geteuid():
                raise InputError(
                    f"state {path} belongs to uid {st.st_uid}, not to the user running fedgen (uid {os.geteuid()}): "
                    "a state holds the CA key and must be owned by whoever renders; use your own state or chown it"
                )
            if st.st_mode & _OPEN_BITS:
                open_paths.append((path, st.st_mode))
        if open_paths:
            shown = ", ".join(f"{path} is {stat.filemode(mode)}" for path, mode in open_paths)
            dir_args = " ".join(shlex.quote(str(p)) for p, mode in open_paths if stat.S_ISDIR(mode))
            file_args = " ".join(shlex.quote(str(p)) for p, mode in open_paths if not stat.S_ISDIR(mode))
            fix = " && ".join(cmd for cmd in (dir_args and f"chmod 700 {dir_args}", file_args and f"chmod 600 {file_args}") if cmd)
            raise InputError(
                f"state {self.path} is open to other users ({shown}); it holds the CA key, so like ssh with its keys "
                f"fedgen refuses it: run `{fix}` and consider who may have read it"
            )

    def _ensure_dir(self) -> None:
        self.check_private()
        raced = False
        try:
            # Every folder fedgen creates on the way is owner-only too (mkdir(parents=True) would use the umask).
            for folder in reversed([self.path, *self.path.parents]):
                if not folder.exists():
                    try:
                        folder.mkdir(mode=0o700)
                    except FileExistsError:  # made meanwhile by another process (two renders started together)
                        raced = True
                        continue
                    os.chmod(folder, 0o700)
        except OSError as exc:
            raise ExternalError(f"state folder {self.path}: {exc.strerror}") from None
        if raced:
            self.check_private()  # what the other process made is judged like anything found

    def load(self) -> StateDocument:
        """The document; an empty one when none was saved. Reads only: creates nothing, takes no lock."""
        self.check_private()
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

    def backup(self) -> Backup:
        """Copy state.json to state.json.backup-<UTC time> in the same owner-only folder (0600, never replacing
        a file); a Backup without a copy when there is no document yet."""
        self.check_private()
        try:
            data = (self.path / DOCUMENT).read_bytes()
        except FileNotFoundError:
            return Backup(self.description, None)
        except OSError as exc:
            raise ExternalError(f"state {self.path / DOCUMENT}: {exc.strerror}") from None
        for attempt in range(100):
            target = self.path / backup_name(DOCUMENT, attempt)
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise ExternalError(f"state backup {target}: {exc.strerror}") from None
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                target.unlink(missing_ok=True)
                raise ExternalError(f"state backup {target}: {exc.strerror}") from None
            return Backup(self.description, str(target))
        raise ExternalError(f"state {self.path}: no free backup name for {DOCUMENT}")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An flock on <state>/lock; the file records who holds it, for the error message.

        No expiry is needed: the kernel releases an flock when its holder exits, however it exits. The
        record is written just after the flock is taken and cleared just before it is released, so a
        contender may find it missing for a moment: take_or_read_holder waits for it (HOLDER_WAIT)."""
        self._ensure_dir()
        lock_path = self.path / LOCK
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            holder = take_or_read_holder(fd, lock_path)
            if holder is not None:
                raise ExternalError(f"state {self.path} is locked by {describe_holder(holder)}; retry when it finishes")
            record = json.dumps(holder_record()).encode()
            # Written over whatever is there, then cut to length: a reader sees an old record, a record cut
            # short, or this one, never an empty file it could take for "no holder".
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # still locked: the next holder starts from an empty record
        finally:
            os.close(fd)


# How long a contender waits for the record of a holder that has just taken the lock (it writes it at once,
# but on a loaded machine the scheduler may pause it in between).
HOLDER_WAIT = 2.0
_HOLDER_POLL = 0.01


def take_or_read_holder(fd: int, lock_path: Path) -> dict[str, object] | None:
    """Take the flock on fd without waiting for it (None), or return the record of the process holding it.

    A record that is not there yet (empty, cut short, or naming a process of this host that is gone: one
    killed while it held the lock) is read again until HOLDER_WAIT has passed, trying the lock meanwhile (its
    holder may finish); after that, an empty record ({}: "an unknown process")."""
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            pass
        record = read_holder(lock_path)
        if record and not (on_this_host(record) and not pid_alive(record.get("pid"))):
            return record
        if time.monotonic() >= deadline:
            return {}
        time.sleep(_HOLDER_POLL)


def read_holder(lock_path: Path) -> dict[str, object] | None:
    """The holder record a lock file names (None when unreadable or not a record)."""
    try:
        rec = loads_json(lock_path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None
