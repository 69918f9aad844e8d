"""Compare what a federation should own with the repo: what to create, update, delete; what conflicts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fedgen.errors import InputError
from fedgen.render.shared import Contribution, shared_files
from fedgen.write.ledger import FEDGEN_GITIGNORE, FEDGEN_GITIGNORE_TEXT, ledger_bytes, ledger_path, read_ledgers


@dataclass(frozen=True)
class Change:
    path: str
    action: str  # create | update | delete
    old: bytes | None
    new: bytes | None


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    unchanged: tuple[str, ...] = field(default=())

    @property
    def is_noop(self) -> bool:
        return not self.changes


def _safe_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or path != str(p):
        raise ValueError(f"refusing to write outside the repo: {path!r}")
    return path


def _read(repo: Path, path: str) -> bytes | None:
    full = repo / path
    if full.is_symlink():
        raise InputError(f"{path}: is a symbolic link; fedgen writes only regular files (remove the link)")
    try:
        return full.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder where fedgen writes a file; move it away") from None
    except NotADirectoryError:
        raise InputError(f"{path}: a parent of this path is a file; move it away") from None


def _others(ledgers: Mapping[str, Mapping[str, object]], federation: str) -> list[Contribution]:
    return [Contribution.from_json(c) for name, doc in ledgers.items() if name != federation for c in doc.get("contributions", [])]  # type: ignore[attr-defined]


def make_plan(repo: Path, federation: str, spec_name: str, owned: Mapping[str, bytes], contributions: list[Contribution]) -> Plan:
    """The repo after rendering this federation: its own files, its ledger, and the shared files
    recomputed from every federation's contribution (its new one included).

    Refuses (InputError) to overwrite a file another federation owns, or a hand-written file that
    differs from what fedgen would write there.
    """
    ledgers = read_ledgers(repo)
    shared = shared_files([*_others(ledgers, federation), *contributions])
    files = dict(owned)
    files[ledger_path(federation)] = ledger_bytes(federation, spec_name, owned, shared, [c.to_json() for c in contributions])
    files[FEDGEN_GITIGNORE] = FEDGEN_GITIGNORE_TEXT
    files.update(shared)
    return _diff(repo, federation, ledgers, files, frozenset(shared))


def removal_plan(repo: Path, federation: str) -> Plan:
    """Delete everything the federation owns and recompute the shared files without it."""
    ledgers = read_ledgers(repo)
    if federation not in ledgers:
        known = ", ".join(sorted(ledgers)) or "none"
        raise InputError(f"no federation {federation!r} in {repo} (rendered here: {known})")
    shared = shared_files(_others(ledgers, federation))
    changes = list(_diff(repo, federation, ledgers, dict(shared), frozenset(shared)).changes)
    old = _read(repo, ledger_path(federation))
    if old is not None:
        changes.append(Change(ledger_path(federation), "delete", old, None))
    return Plan(changes=tuple(sorted(changes, key=lambda c: c.path)))


def _diff(repo: Path, federation: str, ledgers: Mapping[str, Mapping[str, object]], files: Mapping[str, bytes], shared: frozenset[str]) -> Plan:
    mine = ledgers.get(federation, {})
    own_previous = set(mine.get("files", {})) | set(mine.get("shared", []))  # type: ignore[arg-type, call-overload]
    exclusive_of_others = {p: name for name, doc in ledgers.items() if name != federation for p in doc["files"]}  # type: ignore[attr-defined]
    shared_anywhere = {p for doc in ledgers.values() for p in doc.get("shared", [])}  # type: ignore[attr-defined]
    changes: list[Change] = []
    unchanged: list[str] = []
    for path in sorted(files):
        _safe_relpath(path)
        if path in exclusive_of_others:
            other = ledgers[exclusive_of_others[path]]
            raise InputError(f"{path}: owned by federation {exclusive_of_others[path]!r} (spec {other.get('spec')}); two federations cannot render the same file")
        old = _read(repo, path)
        new = files[path]
        if old == new:
            unchanged.append(path)
            continue
        ours = path in own_previous or path in (ledger_path(federation), FEDGEN_GITIGNORE) or (path in shared and path in shared_anywhere)
        if old is not None and not ours:
            raise InputError(f"{path}: exists and was not written by fedgen for {federation!r}; move it away or delete it, then render again")
        changes.append(Change(path, "update" if old is not None else "create", old, new))
    for path in sorted(own_previous - set(files)):
        _safe_relpath(path)
        old = _read(repo, path)
        if old is not None:
            changes.append(Change(path, "delete", old, None))
    return Plan(changes=tuple(changes), unchanged=tuple(unchanged))
