"""Reading a repo's ledgers: every file as found (validate reports what is wrong), or all of them checked (a
render or remove stops at the first problem, before anything is planned or written)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from fedgen.errors import InputError
from fedgen.ledger.guard import FEDGEN_DIR, refuse_symlinks
from fedgen.ledger.record import MAX_LEDGER_BYTES, OWNED_DIR, Ledger, entry_problem, parse_ledger


class LedgerFile(NamedTuple):
    path: str  # repo path
    ledger: Ledger | None  # None when the file is not a ledger
    error: str | None  # why not (one line)


def read_ledger_files(repo: Path) -> list[LedgerFile]:
    """Every .fedgen/owned/*.json (sorted), the ledger or why the file is not one; nothing is read through a
    symbolic link or beyond MAX_LEDGER_BYTES. Raises nothing."""
    folder = repo / OWNED_DIR
    if (repo / FEDGEN_DIR).is_symlink() or folder.is_symlink():
        return [LedgerFile(OWNED_DIR, None, "a symbolic link; no ledger is read through it")]
    if not folder.is_dir():
        return []
    out: list[LedgerFile] = []
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(repo).as_posix()
        try:
            if path.is_symlink() or not path.is_file():
                raise ValueError("a symbolic link or not a regular file; not read")
            with path.open("rb") as fh:
                raw = fh.read(MAX_LEDGER_BYTES + 1)
            if len(raw) > MAX_LEDGER_BYTES:
                raise ValueError(f"larger than {MAX_LEDGER_BYTES // (1024 * 1024)} MiB")
            out.append(LedgerFile(rel, parse_ledger(rel, raw), None))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.append(LedgerFile(rel, None, f"{type(exc).__name__}: {exc}"))
    return out


def read_ledgers(repo: Path) -> dict[str, Ledger]:
    """federation name (its ledger's file name) -> ledger, for every federation rendered into this repo.

    Any problem (a symbolic link on the way, a file that is not a ledger, a path fedgen may not touch: see
    guard.py) is an InputError naming the ledger."""
    refuse_symlinks(repo, OWNED_DIR)
    out: dict[str, Ledger] = {}
    for found in read_ledger_files(repo):
        refuse_symlinks(repo, found.path)
        if found.ledger is None:
            raise InputError(f"{found.path}: not a fedgen ownership record; restore it from git")
        problem = entry_problem(found.ledger)
        if problem:
            raise InputError(f"{found.path}: {problem}; restore the ledger from git")
        out[found.ledger.name] = found.ledger
    return out
