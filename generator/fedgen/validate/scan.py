"""Which files of the repo validate reads: what git would commit, or (outside git) everything but tool and
scratch folders. The state and render scratch space are never read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".tools",
        ".cache",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".tox",
        ".hypothesis",
        ".terraform",
    }
)
# Never read, tracked or not: the state holds every private key, tmp holds a render in progress.
NEVER = (".fedgen/state", ".fedgen/tmp")
MAX_BYTES = 8 * 1024 * 1024  # read whole, as text and parsed; larger files are only streamed for keys


def _skipped(rel: str) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in NEVER)


def _git_files(repo: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files (read-only git query); None when git cannot answer."""
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    try:
        proc = subprocess.run(  # noqa: S603 - fixed arguments, read-only query
            # core.fsmonitor off: reading the index must not start a program a repository's config names
            [git, "-c", "core.fsmonitor=false", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return sorted({p for p in proc.stdout.decode("utf-8", "replace").split("\0") if p})


def _walk(repo: Path) -> list[str]:
    out: list[str] = []
    for folder, dirs, files in os.walk(repo):
        rel_folder = Path(folder).relative_to(repo).as_posix()
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info") and not _skipped(f"{rel_folder}/{d}".lstrip("./")))
        for name in files:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            out.append(rel)
    return sorted(out)


def list_files(repo: Path) -> list[str]:
    """Repo-relative posix paths of regular files (symbolic links and the state excluded), sorted."""
    found = _git_files(repo)
    paths = found if found is not None else _walk(repo)
    out = []
    for rel in paths:
        full = repo / rel
        if _skipped(rel) or full.is_symlink() or not full.is_file():
            continue
        out.append(rel)
    return out


def read_small(path: Path) -> bytes | None:
    """The whole file when it has at most MAX_BYTES (larger files are only streamed); None when larger or
    unreadable."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_BYTES else None


def as_text(data: bytes | None) -> str | None:
    """The file as text; None for binary (a NUL byte) or unread files."""
    if data is None or b"\0" in data:
        return None
    return data.decode("utf-8", "replace")
