"""Apply a plan so that an interruption leaves the old tree or (after roll-forward) the new one.

New files are written and fsynced under .fedgen/tmp/<id>/ first. The commit point is one atomic rename of
a journal listing every rename and delete. Only then are files moved into place; the journal is removed
last. Every fedgen command first calls recover(), which finishes a committed journal (roll forward) or
throws away an uncommitted staging folder, so nobody ever works on a mix.

One writer at a time: writing() is an exclusive flock on the repo's .fedgen folder, held by recover() and by
a render or remove from its plan to its last write (apply_plan_locked() inside it), so a command starting while
another render is writing waits for that write to end instead of "recovering" (that is, deleting) the
other's staging folder, and a plan, which reads every federation's ledger, is never made from ledgers that
change before it is written. The journal records each staged file's digest: a roll-forward that
finds neither the staged copy nor the expected content at the target stops with an error, never a mix.

The journal sits in the repo, so it is checked like a ledger before anything moves: it may move only
staged files, only to paths a render may write (fedgen.ledger.guard), and never through a symbolic link.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedgen._crashpoint import reached as _crash_reached  # test hook: inert unless FEDGEN_TEST_REACHED is set
from fedgen._crashpoint import step as _crash_step  # test hook: inert unless FEDGEN_TEST_CRASH_AFTER is set
from fedgen.errors import ExternalError, InputError
from fedgen.ledger.guard import FEDGEN_DIR, path_problem, refuse_symlinks
from fedgen.ledger.record import is_fedgen_record
from fedgen.untrusted import loads_json
from fedgen.write.plan import Plan

JOURNAL = f"{FEDGEN_DIR}/journal.json"
TMP_DIR = f"{FEDGEN_DIR}/tmp"
_STAGING = re.compile(re.escape(TMP_DIR) + r"/render-[0-9]+")
_STAGED = re.compile(r"[0-9]{6}")
FILE_MODE = 0o644
# How long a command waits for another one's write to end (writes take seconds at most).
WRITE_LOCK_TIMEOUT = 120.0


@contextmanager
def writing(repo: Path) -> Iterator[None]:
    """Exclusive flock on <repo>/.fedgen (a folder, so no lock file to commit or ignore); released on exit or
    death. Not reentrant: inside it, apply with apply_plan_locked()."""
    refuse_symlinks(repo, FEDGEN_DIR)
    folder = repo / FEDGEN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + WRITE_LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _crash_reached("write-lock-wait")  # test hook: inert unless FEDGEN_TEST_REACHED is set
                if time.monotonic() > deadline:
                    raise ExternalError(
                        f"{folder}: another fedgen command has been writing this repo for {WRITE_LOCK_TIMEOUT:.0f} s; retry when it finishes"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


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
    _crash_step()


def apply_plan_locked(repo: Path, plan: Plan) -> None:
    """Write the plan; the caller holds writing(repo) and made the plan under it."""
    if plan.is_noop:
        return
    _recover(repo)
    _stage_and_commit(repo, plan)
    _roll_forward(repo)


def _stage_and_commit(repo: Path, plan: Plan) -> None:
    staging = repo / TMP_DIR / f"render-{os.getpid()}"
    refuse_symlinks(repo, staging.relative_to(repo).as_posix())
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staged: list[tuple[str, str, str]] = []  # staged file, target, sha256 of the content
        for i, change in enumerate(plan.changes):
            if change.new is not None:
                name = f"{i:06d}"
                _write_file(staging / name, change.new)
                staged.append((str(staging.relative_to(repo) / name), change.path, hashlib.sha256(change.new).hexdigest()))
        _fsync_dir(staging) if staged else None
        journal = {
            "moves": staged,
            "deletes": [c.path for c in plan.changes if c.action == "delete"],
            "staging": str(staging.relative_to(repo)),
        }
        tmp_journal = repo / f"{JOURNAL}.tmp"
        _write_file(tmp_journal, json.dumps(journal, indent=1).encode())
        os.replace(tmp_journal, repo / JOURNAL)  # commit point
        _crash_step()
        _fsync_dir(repo / FEDGEN_DIR)
        _crash_step()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExternalError(f"writing the new tree failed before it was committed ({exc}); the repo is unchanged") from None


def recover(repo: Path) -> str | None:
    """Finish or discard an interrupted render (waiting for a render that is writing now). Returns what was
    done, for a message."""
    if not (repo / FEDGEN_DIR).is_dir():
        return None  # nothing was ever written: nothing to recover, and nothing to create
    with writing(repo):
        return _recover(repo)


def _recover(repo: Path) -> str | None:
    for scratch in (TMP_DIR, JOURNAL, f"{JOURNAL}.tmp"):  # never remove or write through a link
        refuse_symlinks(repo, scratch)
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
        journal = loads_json(journal_path.read_text())
    except (OSError, ValueError) as exc:
        raise ExternalError(f"{JOURNAL}: unreadable journal of an interrupted render ({exc}); restore the tree from git and delete it") from None
    _check_journal(repo, journal)
    try:
        touched_dirs: set[Path] = set()
        for move in journal["moves"]:
            src, dst = move[0], move[1]
            source, target = repo / src, repo / dst
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                touched_dirs.add(target.parent)
                _crash_step()
            elif len(move) > 2 and not _has_digest(target, move[2]):
                raise ExternalError(f"{JOURNAL}: the staged new content of {dst} is missing; restore the tree from git, delete the journal and render again")
        for path in journal["deletes"]:
            target = repo / path
            target.unlink(missing_ok=True)
            touched_dirs.add(target.parent)
            _prune_empty_parents(repo, target.parent)
            _crash_step()
        for d in sorted(touched_dirs):
            if d.exists():
                _fsync_dir(d)
        journal_path.unlink()
        _fsync_dir(repo / FEDGEN_DIR)
        _crash_step()
        shutil.rmtree(repo / journal["staging"], ignore_errors=True)
        _crash_step()
        tmp = repo / TMP_DIR
        if tmp.exists() and not any(tmp.iterdir()):
            tmp.rmdir()
    except OSError as exc:
        raise ExternalError(f"completing the render failed ({exc}); run fedgen render again to finish it") from None


def _check_journal(repo: Path, journal: object) -> None:
    """InputError unless the journal only moves its own staged files to, and deletes, paths a render may write."""

    def refuse(what: str) -> InputError:
        return InputError(f"{JOURNAL}: {what}; fedgen did not write this journal: delete it, restore the tree from git and render again")

    if not isinstance(journal, dict) or not isinstance(journal.get("moves"), list) or not isinstance(journal.get("deletes"), list):
        raise refuse("not a journal of moves and deletes")
    staging = journal.get("staging")
    if not isinstance(staging, str) or not _STAGING.fullmatch(staging):
        raise refuse(f"staging folder {staging!r} is not under {TMP_DIR}/")
    targets: list[object] = list(journal["deletes"])
    for move in journal["moves"]:
        if not isinstance(move, list) or not 2 <= len(move) <= 3 or not isinstance(move[0], str):
            raise refuse(f"malformed move {move!r}")
        folder, _, name = move[0].rpartition("/")
        if folder != staging or not _STAGED.fullmatch(name):
            raise refuse(f"moves {move[0]!r}, which is not a staged file")
        refuse_symlinks(repo, move[0])
        targets.append(move[1])
    for target in targets:
        problem = path_problem(target, internal=is_fedgen_record)
        if problem:
            raise refuse(f"names {target!r} ({problem})")
        refuse_symlinks(repo, str(target))


def _has_digest(path: Path, digest: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        return False


def _prune_empty_parents(repo: Path, folder: Path) -> None:
    root = repo.resolve()
    while folder.resolve() != root and folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
