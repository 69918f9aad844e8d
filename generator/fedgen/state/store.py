"""The interface every state backend implements."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from fedgen.state.document import StateDocument


@dataclass(frozen=True)
class UnlockResult:
    location: str
    removed: bool
    message: str


@dataclass(frozen=True)
class Backup:
    """A copy of the state document made before an irreversible step (`backup()`)."""

    state: str  # the state's description (folder or gs:// location)
    copy: str | None  # the copy's path or gs:// URL; None when the state held no document yet


def backup_name(document: str, attempt: int = 0) -> str:
    """`state.json.backup-<UTC time>` (then `.1`, `.2`... when that name is taken), beside the document."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{document}.backup-{stamp}" + (f".{attempt}" if attempt else "")


class StateStore(Protocol):
    """A place holding one StateDocument, with an exclusive lock.

    load() returns an empty document when nothing was saved yet; it is the read path: it creates nothing,
    takes no lock and needs only read access (what `render --check`, bundles and `workspace push --dry-run`
    use). save() replaces the document atomically and fails (ExternalError) rather than overwrite a document
    someone else saved since load(). lock() is held for the whole command of a writer; a held lock is an
    ExternalError naming the holder. backup() copies the document beside it (never replacing a copy) before an
    irreversible step. A local state open to other users is an InputError on every call.
    """

    description: str

    def load(self) -> StateDocument: ...

    def save(self, document: StateDocument) -> None: ...

    def lock(self) -> AbstractContextManager[None]: ...

    def backup(self) -> Backup: ...
