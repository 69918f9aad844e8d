"""Removing a stale state lock (`fedgen state unlock`, `--force-unlock`), for GCS and local states."""

from __future__ import annotations

import os
from pathlib import Path

from fedgen.errors import ExternalError
from fedgen.gcs import SCHEME
from fedgen.state.gcs import GcsStore, _parse_record, describe_holder
from fedgen.state.store import UnlockResult


def force_unlock(location: str | None, repo: Path, federation: str | None = None) -> UnlockResult:
    """Remove a stale lock from a state location (what `fedgen state unlock` runs).

    gs://: deletes the lock object (refused when its holder is a live process on this host).
    A local folder (default: the federation's folder under <repo>/.fedgen/state): the lock is an flock, which the kernel drops when its holder exits, so it can never be
    stale: report whether it is held (ExternalError naming the live holder) and remove nothing. Unlinking the
    lock file under a live holder would let a second process lock a new file, breaking mutual exclusion.
    """
    if location and location.startswith(SCHEME):
        return GcsStore.from_url(location).force_unlock()
    from fedgen.state import default_state_dir

    return _local_unlock(Path(location) if location else default_state_dir(repo, federation))


def _local_unlock(path: Path) -> UnlockResult:
    import fcntl

    from fedgen.state.local import LOCK as LOCAL_LOCK

    lock_path = path / LOCAL_LOCK
    stale_note = "a local lock is released by the kernel when its holder exits, so it is never stale"
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return UnlockResult(str(path), removed=False, message=f"state {path} is not locked")
    except OSError as exc:
        raise ExternalError(f"state {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = _parse_record(lock_path.read_bytes())
            except OSError:
                holder = None
            raise ExternalError(
                f"state {path} is locked by {describe_holder(holder)}, a live process ({stale_note}); "
                "wait for it to finish or stop it"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return UnlockResult(str(path), removed=False, message=f"state {path} is not locked ({stale_note})")
