"""Apply a plan so that an interruption leaves the old tree or (after roll-forward) the new one.

New files are written and fsynced under .fedgen/tmp/<id>/ first. The commit point is one atomic rename of
a journal listing every rename and delete. Only then are files moved into place; the journal is removed
last. Every fedgen command first calls recover(), which finishes a committed journal (roll forward) or
throws away an uncommitted staging folder, so nobody ever works on a mix.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from fedgen.errors import ExternalError
from fedgen.write.ledger import FEDGEN_DIR
from fedgen.write.plan import Plan

JOURNAL = f"{FEDGEN_DIR}/journal.json"
TMP_DIR = f"{FEDGEN_DIR}/tmp"
FILE_MODE = 0o644


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, FILE_MODE)


def apply_plan(repo: Path, plan: Plan) -> None:
    if plan.is_noop:
        return
    recover(repo)
    staging = repo / TMP_DIR / f"render-{os.getpid()}"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staged: list[tuple[str, str]] = []
        for i, change in enumerate(plan.changes):
            if change.new is not None:
                name = f"{i:06d}"
                _write_file(staging / name, change.new)
                staged.append((str(staging.relative_to(repo) / name), change.path))
        _fsync_dir(staging) if staged else None
        journal = {
            "moves": staged,
            "deletes": [c.path for c in plan.changes if c.action == "delete"],
            "staging": str(staging.relative_to(repo)),
        }
        tmp_journal = repo / f"{JOURNAL}.tmp"
        _write_file(tmp_journal, json.dumps(journal, indent=1).encode())
        os.replace(tmp_journal, repo / JOURNAL)  # commit point
        _fsync_dir(repo / FEDGEN_DIR)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExternalError(f"writing the new tree failed before it was committed ({exc}); the repo is unchanged") from None
    _roll_forward(repo)


def recover(repo: Path) -> str | None:
    """Finish or discard an interrupted render. Returns what was done, for a message."""
    journal = repo / JOURNAL
    if journal.exists():
        _roll_forward(repo)
        return "completed an interrupted render"
    tmp = repo / TMP_DIR
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        (repo / f"{JOURNAL}.tmp").unlink(missing_ok=True)
        return "discarded an interrupted render that had not been committed"
    return None


def _roll_forward(repo: Path) -> None:
    """Idempotent: every step can be repeated after a crash inside this function."""
    journal_path = repo / JOURNAL
    try:
        journal = json.loads(journal_path.read_text())
    except (OSError, ValueError) as exc:
        raise ExternalError(f"{JOURNAL}: unreadable journal of an interrupted render ({exc}); restore the tree from git and delete it") from None
    try:
        touched_dirs: set[Path] = set()
        for src, dst in journal["moves"]:
            source, target = repo / src, repo / dst
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                touched_dirs.add(target.parent)
        for path in journal["deletes"]:
            target = repo / path
            target.unlink(missing_ok=True)
            touched_dirs.add(target.parent)
            _prune_empty_parents(repo, target.parent)
        for d in sorted(touched_dirs):
            if d.exists():
                _fsync_dir(d)
        journal_path.unlink()
        _fsync_dir(repo / FEDGEN_DIR)
        shutil.rmtree(repo / journal["staging"], ignore_errors=True)
        tmp = repo / TMP_DIR
        if tmp.exists() and not any(tmp.iterdir()):
            tmp.rmdir()
    except OSError as exc:
        raise ExternalError(f"completing the render failed ({exc}); run fedgen render again to finish it") from None


def _prune_empty_parents(repo: Path, folder: Path) -> None:
    root = repo.resolve()
    while folder.resolve() != root and folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
