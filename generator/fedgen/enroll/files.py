"""Atomic writes for enrollment files: a temporary file in the same folder, fsync, one rename."""

from __future__ import annotations

import os
from pathlib import Path

from fedgen.errors import ExternalError, InputError


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """`path` keeps its old bytes or gets `data` in full; never written through a symbolic link."""
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; refusing to write through it")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: exists and is not a regular file")
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), mode)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
    except FileExistsError:
        raise ExternalError(f"{tmp}: a temporary file of another run is in the way; remove it") from None
    except OSError as exc:
        raise ExternalError(f"{path}: {exc.strerror or exc}") from None


def inside(repo: Path, path: Path) -> bool:
    """True when `path` (resolved, following links of existing parents) lies inside `repo`."""
    try:
        path.resolve().relative_to(repo.resolve())
    except ValueError:
        return False
    return True
