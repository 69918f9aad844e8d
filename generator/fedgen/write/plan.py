"""Compare the rendered files with the repo: what to create, update, delete; what would conflict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fedgen.errors import InputError
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


def make_plan(repo: Path, federation: str, spec_name: str, rendered: Mapping[str, bytes]) -> Plan:
    """Everything the federation owns after this render: rendered files + its ledger + .fedgen/.gitignore.

    Refuses (InputError) to overwrite a file another federation owns, or a hand-written file that
    differs from what fedgen would write there.
    """
    ledgers = read_ledgers(repo)
    own_previous = set(ledgers.get(federation, {}).get("files", {}))  # type: ignore[arg-type]
    others = {p: name for name, doc in ledgers.items() if name != federation for p in doc["files"]}  # type: ignore[union-attr]
    files = dict(rendered)
    files[ledger_path(federation)] = ledger_bytes(federation, spec_name, rendered)
    files[FEDGEN_GITIGNORE] = FEDGEN_GITIGNORE_TEXT
    changes: list[Change] = []
    unchanged: list[str] = []
    for path in sorted(files):
        _safe_relpath(path)
        if path in others:
            other = ledgers[others[path]]
            raise InputError(f"{path}: owned by federation {others[path]!r} (spec {other.get('spec')}); two federations cannot render the same file")
        old = _read(repo, path)
        new = files[path]
        if old == new:
            unchanged.append(path)
            continue
        owned = path in own_previous or path in (ledger_path(federation), FEDGEN_GITIGNORE)
        if old is not None and not owned:
            raise InputError(f"{path}: exists and was not written by fedgen for {federation!r}; move it away or delete it, then render again")
        changes.append(Change(path, "update" if old is not None else "create", old, new))
    for path in sorted(own_previous - set(files)):
        _safe_relpath(path)
        old = _read(repo, path)
        if old is not None:
            changes.append(Change(path, "delete", old, None))
    return Plan(changes=tuple(changes), unchanged=tuple(unchanged))
