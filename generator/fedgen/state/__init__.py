"""Where the federation's secrets live between renders: the CA, every key, the sealing records.

The state is one JSON document so that a save is one atomic replace (a local file or one GCS object).
"""

from __future__ import annotations

from pathlib import Path

from fedgen.state.document import StateDocument
from fedgen.state.store import StateStore

DEFAULT_STATE_DIR = Path(".fedgen") / "state"

__all__ = ["DEFAULT_STATE_DIR", "StateDocument", "StateStore", "open_store"]


def open_store(location: str | None, repo: Path) -> StateStore:
    """The store a --state value names: a folder (default .fedgen/state under the repo) or gs://bucket/prefix."""
    if location and location.startswith("gs://"):
        from fedgen.state.gcs import GcsStore

        return GcsStore.from_url(location)
    from fedgen.state.local import LocalStore

    path = Path(location) if location else repo / DEFAULT_STATE_DIR
    return LocalStore(path)
