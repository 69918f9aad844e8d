"""The federation's state (root CA and every key): its locks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.errors import InputError

if TYPE_CHECKING:
    from fedgen.state import Backup


@dataclass(frozen=True)
class UnlockOutcome:
    location: str
    removed: bool
    message: str  # one line: what was found and done
    backup: Backup | None = None  # force on a gs:// state: the copy made before a live lease could be removed


def state_unlock(*, state: str | None = None, spec: Path | None = None, repo: Path = Path("."), force: bool = False) -> UnlockOutcome:
    """Remove a stale lock (fedgen.state.unlock.force_unlock) of `state`, else of the spec's default local state.

    force (gs:// only: also a live lease of another host) first copies the state document beside itself.
    """
    from fedgen.cloudstorage import SCHEME
    from fedgen.state import open_store
    from fedgen.state.unlock import force_unlock

    if state is None and spec is None:
        raise InputError("pass --state LOCATION (or --spec SPEC for its default local state)")
    repo = repo.resolve()
    federation = _federation(spec) if state is None and spec is not None else None
    backup = open_store(state, repo, federation).backup() if force and state and state.startswith(SCHEME) else None
    result = force_unlock(state, repo, federation, force=force)
    return UnlockOutcome(result.location, result.removed, result.message, backup)


def unlock_before(*, spec: Path, state: str | None = None, repo: Path = Path(".")) -> UnlockOutcome:
    """--force-unlock of render and workspace push: remove a stale lock of the spec's state first."""
    from fedgen.state.unlock import force_unlock

    result = force_unlock(state, repo.resolve(), _federation(spec))
    return UnlockOutcome(result.location, result.removed, result.message)


def _federation(spec: Path) -> str:
    from fedgen.spec import load_federation

    return load_federation(spec).name
