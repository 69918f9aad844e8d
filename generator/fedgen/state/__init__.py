"""Where the federation's secrets live between renders: the CA, every key, the sealing records.

The state is one JSON document so that a save is one atomic replace (a local file or one GCS object).
"""

from __future__ import annotations

from pathlib import Path

from fedgen.state.document import StateDocument
from fedgen.state.store import StateStore

DEFAULT_STATE_DIR = Path(".fedgen") / "state"

__all__ = ["DEFAULT_STATE_DIR", "StateDocument", "StateStore", "default_state_dir", "open_store"]


def default_state_dir(repo: Path, federation: str | None) -> Path:
    """<repo>/.fedgen/state/<federation>: one state per federation, so several can share a repo."""
    return repo / DEFAULT_STATE_DIR / federation if federation else repo / DEFAULT_STATE_DIR


def open_store(location: str | None, repo: Path, federation: str | None = None) -> StateStore:
    """The store a --state value names: a folder or gs://bucket/prefix; default .fedgen/state/<federation>."""
    if location and location.startswith("gs://"):
        from fedgen.state.gcs import GcsStore

        return GcsStore.from_url(location)
    from fedgen.state.local import LocalStore

    return LocalStore(Path(location) if location else default_state_dir(repo, federation))
