"""Compare what a federation should own with the repo: what to create, update, delete; what conflicts.

A plan never overwrites or deletes a file whose content is not what fedgen wrote there: a file a ledger
records must still have the recorded digest, and a shared file must still be what the recorded
contributions make. Otherwise it stops (InputError naming the files) before anything is written.

The plan takes what was rendered as data: the federation's own files, and the shared files (render's
shared.py makes them from every federation's contributions); it renders nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fedgen.errors import InputError
from fedgen.ledger import Contribution, Ledger, ledger_bytes, ledger_path
from fedgen.ledger.guard import path_problem, refuse_symlinks
from fedgen.ledger.record import FEDGEN_GITIGNORE, FEDGEN_GITIGNORE_TEXT, digest, is_fedgen_record


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


@dataclass(frozen=True)
class RenderedFiles:
    """What a render made for one federation: the plan's input."""

    federation: str
    spec_name: str
    owned: Mapping[str, bytes]  # the files it owns alone
    contributions: tuple[Contribution, ...]  # what it feeds the shared files (recorded in its ledger)
    shared: Mapping[str, bytes]  # the shared files, from these contributions and every other federation's recorded ones


def check_recorded(repo: Path, federation: str, ledgers: Mapping[str, Ledger], recorded_shared: Mapping[str, bytes]) -> None:
    """Stop (InputError naming every such file) when a file this federation recorded, or any shared file, no
    longer holds what fedgen wrote: a render or remove would overwrite or delete someone's edit.

    recorded_shared: the shared files as every ledger's recorded contributions make them."""
    mine = ledgers.get(federation)
    edited = [path for path, recorded in sorted(mine.files.items()) if (old := _read(repo, path)) is not None and digest(old) != recorded] if mine else []
    shared = sorted(set(recorded_shared) | {p for ledger in ledgers.values() for p in ledger.shared})
    edited += [path for path in shared if (old := _read(repo, path)) is not None and old != recorded_shared.get(path)]
    if edited:
        raise InputError(
            f"{', '.join(sorted(edited))}: changed since fedgen wrote {'them' if len(edited) > 1 else 'it'} (differs from what "
            f"{ledger_path(federation) if mine else 'the ledgers in .fedgen/owned'} records); restore from git (git checkout -- PATH) "
            "or move it away, then run again"
        )


def preflight(repo: Path, federation: str, ledgers: Mapping[str, Ledger], recorded_shared: Mapping[str, bytes], paths: Iterable[str]) -> None:
    """What can be refused before the state is locked: forged or hand-edited records (check_recorded), and a
    symbolic link on the way to any path (file or folder) the render writes."""
    check_recorded(repo, federation, ledgers, recorded_shared)
    for path in paths:
        refuse_symlinks(repo, path)


def make_plan(repo: Path, rendered: RenderedFiles, ledgers: Mapping[str, Ledger], recorded_shared: Mapping[str, bytes]) -> Plan:
    """The repo after rendering this federation: its own files, its ledger, and the shared files.

    ledgers: every federation's, read from the repo; recorded_shared: the shared files they make (see
    check_recorded). Refuses (InputError) to overwrite a file another federation owns, or a hand-written file
    that differs from what fedgen would write there.
    """
    federation = rendered.federation
    check_recorded(repo, federation, ledgers, recorded_shared)
    files = dict(rendered.owned)
    files[ledger_path(federation)] = ledger_bytes(federation, rendered.spec_name, rendered.owned, rendered.shared, rendered.contributions)
    files[FEDGEN_GITIGNORE] = FEDGEN_GITIGNORE_TEXT
    files.update(rendered.shared)
    return _diff(repo, federation, ledgers, files, frozenset(rendered.shared))


def require_rendered(repo: Path, federation: str, ledgers: Mapping[str, Ledger]) -> None:
    """InputError unless the federation has a ledger in this repo (naming those that do)."""
    if federation not in ledgers:
        known = ", ".join(sorted(ledgers)) or "none"
        raise InputError(f"no federation {federation!r} in {repo} (rendered here: {known})")


def removal_plan(repo: Path, federation: str, ledgers: Mapping[str, Ledger], recorded_shared: Mapping[str, bytes], shared: Mapping[str, bytes]) -> Plan:
    """Delete everything the federation owns; shared: the shared files without its contributions."""
    require_rendered(repo, federation, ledgers)
    check_recorded(repo, federation, ledgers, recorded_shared)
    changes = list(_diff(repo, federation, ledgers, dict(shared), frozenset(shared)).changes)
    old = _read(repo, ledger_path(federation))
    if old is not None:
        changes.append(Change(ledger_path(federation), "delete", old, None))
    return Plan(changes=tuple(sorted(changes, key=lambda c: c.path)))


def _diff(repo: Path, federation: str, ledgers: Mapping[str, Ledger], files: Mapping[str, bytes], shared: frozenset[str]) -> Plan:
    mine = ledgers.get(federation)
    own_previous = mine.owned if mine else frozenset()
    exclusive_of_others = {p: name for name, ledger in ledgers.items() if name != federation for p in ledger.files}
    shared_anywhere = {p for ledger in ledgers.values() for p in ledger.shared}
    changes: list[Change] = []
    unchanged: list[str] = []
    for path in sorted(files):
        if path in exclusive_of_others:
            other = ledgers[exclusive_of_others[path]]
            raise InputError(f"{path}: owned by federation {exclusive_of_others[path]!r} (spec {other.spec}); two federations cannot render the same file")
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
