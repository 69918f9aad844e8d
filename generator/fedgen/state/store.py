"""The interface every state backend implements."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from fedgen.state.document import StateDocument


@dataclass(frozen=True)
class UnlockResult:
    location: str
    removed: bool
    message: str


class StateStore(Protocol):
    """A place holding one StateDocument, with an exclusive lock.

    load() returns an empty document when nothing was saved yet; it is the read path: it creates nothing,
    takes no lock and needs only read access (what `render --check`, bundles and `workspace push --dry-run`
    use). save() replaces the document atomically and fails (ExternalError) rather than overwrite a document
    someone else saved since load(). lock() is held for the whole command of a writer; a held lock is an
    ExternalError naming the holder. A local state open to other users is an InputError on every call.
    """

    description: str

    def load(self) -> StateDocument: ...

    def save(self, document: StateDocument) -> None: ...

    def lock(self) -> AbstractContextManager[None]: ...
