"""Deterministic tar.gz archives and owner-only atomic writes.

tar.gz rather than zip: tar keeps each file's mode (the exec bit of run.sh and start scripts, 0600 on the
private key) through every common extractor, while zip extractors often drop Unix modes; gzip+tar also
extracts with stock tools on every Linux site. Determinism: entries sorted, parent folders listed first,
mtime 0, uid/gid 0 with empty owner names, fixed modes, PAX format without extended headers, and a gzip
header with mtime 0 and no file name. The same files give the same bytes.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fedgen._crashpoint import pause as _crash_pause  # test hook: inert unless FEDGEN_TEST_PAUSE_AT is set
from fedgen.errors import ExternalError, InputError
from fedgen.holder import pid_alive
from fedgen.scratch import registered_file

DIR_MODE = 0o755
# A top-level folder (the kit root, holding the private key) is owner-only.
TOP_DIR_MODE = 0o700


@dataclass(frozen=True)
class Entry:
    data: bytes
    mode: int


def _dirs_of(paths: list[str]) -> list[str]:
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)


def tar_gz(entries: Mapping[str, Entry], *, empty_dirs: tuple[str, ...] = ()) -> bytes:
    """A tar.gz of `entries` (archive path -> data and mode); folders are added for every parent."""
    files = sorted(entries)
    dirs = sorted(set(_dirs_of(files)) | set(_dirs_of([f"{d}/x" for d in empty_dirs])))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted([*[(d, True) for d in dirs], *[(f, False) for f in files]], key=lambda item: item[0]):
            path, is_dir = name
            info = tarfile.TarInfo(path + "/" if is_dir else path)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = DIR_MODE if "/" in path else TOP_DIR_MODE
                tar.addfile(info)
            else:
                entry = entries[path]
                info.type = tarfile.REGTYPE
                info.mode = entry.mode
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename; refuse symlinks.

    The temporary file is created with O_EXCL and `mode`, so the content is never readable by others, not
    even for a moment; `path` either keeps its old content or gets the new one in full.
    """
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; refusing to write through it")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: exists and is not a regular file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: folder {folder} does not exist")
    _sweep_stale(folder, path.name)
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with registered_file(tmp):  # a bundle holds a private key: gone on SIGINT/SIGTERM too
            try:
                with os.fdopen(fd, "wb") as fh:
                    os.fchmod(fh.fileno(), mode)  # the umask may have narrowed (never widened) it: set it exactly
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                _crash_pause("bundle")  # test hook: the staged archive is on disk here
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, path)
    except FileExistsError:
        raise ExternalError(f"{tmp}: a temporary file of another run is in the way; remove it") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExternalError(f"{path}: {exc.strerror}") from None


def _sweep_stale(folder: Path, name: str) -> None:
    """Remove .<name>.<pid>.tmp files whose writer is gone (killed before it could clean up)."""
    prefix, suffix = f".{name}.", ".tmp"
    for stale in folder.glob(f".{glob.escape(name)}.*.tmp"):
        pid = stale.name[len(prefix) : -len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
