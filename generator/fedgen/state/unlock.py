"""Removing a stale state lock (`fedgen state unlock`, `--force-unlock`), for GCS and local states."""

from __future__ import annotations

import os
from pathlib import Path

from fedgen.cloudstorage import SCHEME
from fedgen.errors import ExternalError
from fedgen.holder import describe_holder
from fedgen.state.gcs import GcsStore
from fedgen.state.store import UnlockResult


def force_unlock(location: str | None, repo: Path, federation: str | None = None, *, force: bool = False) -> UnlockResult:
    """Remove a stale lock from a state location (what `fedgen state unlock` runs).

    gs://: deletes the lease when its holder is gone: a process of this host that no longer runs, or a lease
    past its expiry. A live process on this host is never unlocked; a live lease of another host only with
    force (fedgen cannot see that host's processes).
    A local folder (default: the federation's folder under <repo>/.fedgen/state): the lock is an flock, which
    the kernel drops when its holder exits, so it can never be stale: report whether it is held (ExternalError
    naming the live holder, with or without force) and remove nothing. Unlinking the lock file under a live
    holder would let a second process lock a new file, breaking mutual exclusion.
    """
    if location and location.startswith(SCHEME):
        return GcsStore.from_url(location).force_unlock(force=force)
    from fedgen.state import default_state_dir

    return _local_unlock(Path(location) if location else default_state_dir(repo, federation))


def _local_unlock(path: Path) -> UnlockResult:
    import fcntl

    from fedgen.state.local import LOCK as LOCAL_LOCK
    from fedgen.state.local import take_or_read_holder

    lock_path = path / LOCAL_LOCK
    stale_note = "a local lock is released by the kernel when its holder exits, so it is never stale"
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return UnlockResult(str(path), removed=False, message=f"state {path} is not locked")
    except OSError as exc:
        raise ExternalError(f"state {path}: {exc.strerror}") from None
    try:
        holder = take_or_read_holder(fd, lock_path)
        if holder is not None:
            raise ExternalError(f"state {path} is locked by {describe_holder(holder)}, a live process ({stale_note}); wait for it to finish or stop it")
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return UnlockResult(str(path), removed=False, message=f"state {path} is not locked ({stale_note})")
