"""Compare what a federation should own with the repo: what to create, update, delete; what conflicts.

A plan never overwrites or deletes a file whose content is not what fedgen wrote there: a file a ledger
records must still have the recorded digest, and a shared file must still be what the recorded
contributions make. Otherwise it stops (InputError naming the files) before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.render.shared import Contribution, shared_files
from fedgen.write.guard import path_problem, refuse_symlinks
from fedgen.write.ledger import FEDGEN_GITIGNORE, FEDGEN_GITIGNORE_TEXT, digest, is_fedgen_record, ledger_bytes, ledger_path, read_ledgers


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


def _read(repo: Path, path: str) -> bytes | None:
    """The file's content (None: absent), after checking fedgen may touch the path at all."""
    problem = path_problem(path, internal=is_fedgen_record)
    if problem:
        raise InputError(f"{path}: fedgen does not write here ({problem})")
    refuse_symlinks(repo, path)
    full = repo / path
    try:
        return full.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder where fedgen writes a file; move it away") from None
    except NotADirectoryError:
        raise InputError(f"{path}: a parent of this path is a file; move it away") from None


def _contributions(ledgers: Mapping[str, Mapping[str, Any]], *, but: str | None = None) -> list[Contribution]:
    """Every federation's recorded contributions (but one's); a malformed record is an InputError naming its ledger."""
    out: list[Contribution] = []
    for name, doc in sorted(ledgers.items()):
        if name == but:
            continue
        try:
            recorded = [Contribution.from_json(c) for c in doc.get("contributions", [])]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(f"{ledger_path(name)}: a contribution record is malformed; restore the ledger from git") from None
        for path in shared_files(recorded):
            problem = path_problem(path)
            if problem:
                raise InputError(f"{ledger_path(name)}: a contribution names {path!r} ({problem}); restore the ledger from git")
        out.extend(recorded)
    return out


def check_recorded(repo: Path, federation: str, ledgers: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Stop (InputError naming every such file) when a file this federation recorded, or any shared file, no
    longer holds what fedgen wrote: a render or remove would overwrite or delete someone's edit."""
    ledgers = read_ledgers(repo) if ledgers is None else ledgers
    expected = shared_files(_contributions(ledgers))
    mine = ledgers.get(federation, {})
    edited = [path for path, recorded in sorted(mine.get("files", {}).items()) if (old := _read(repo, path)) is not None and digest(old) != recorded]
    shared = sorted(set(expected) | {p for doc in ledgers.values() for p in doc.get("shared", [])})
    edited += [path for path in shared if (old := _read(repo, path)) is not None and old != expected.get(path)]
    if edited:
        raise InputError(
            f"{', '.join(sorted(edited))}: changed since fedgen wrote {'them' if len(edited) > 1 else 'it'} (differs from what "
            f"{ledger_path(federation) if mine else 'the ledgers in .fedgen/owned'} records); restore from git (git checkout -- PATH) "
            "or move it away, then run again"
        )


def preflight(repo: Path, federation: str, paths: Iterable[str]) -> None:
    """What can be refused before the state is locked: forged or hand-edited records (check_recorded), and a
    symbolic link on the way to any path (file or folder) the render writes."""
    check_recorded(repo, federation)
    for path in paths:
        refuse_symlinks(repo, path)


def make_plan(repo: Path, federation: str, spec_name: str, owned: Mapping[str, bytes], contributions: list[Contribution]) -> Plan:
    """The repo after rendering this federation: its own files, its ledger, and the shared files
    recomputed from every federation's contribution (its new one included).

    Refuses (InputError) to overwrite a file another federation owns, or a hand-written file that
    differs from what fedgen would write there.
    """
    ledgers = read_ledgers(repo)
    check_recorded(repo, federation, ledgers)
    shared = shared_files([*_contributions(ledgers, but=federation), *contributions])
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
    check_recorded(repo, federation, ledgers)
    shared = shared_files(_contributions(ledgers, but=federation))
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
        old = _read(repo, path)
        if old is not None:
            changes.append(Change(path, "delete", old, None))
    return Plan(changes=tuple(changes), unchanged=tuple(unchanged))
