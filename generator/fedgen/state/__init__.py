"""Where the federation's secrets live between renders: the CA, every key, the sealing records.

The state is one JSON document so that a save is one atomic replace (a local file or one GCS object).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.errors import InputError
from fedgen.state.document import StateDocument
from fedgen.state.store import Backup, StateStore

if TYPE_CHECKING:
    from fedgen.spec.model import Federation

DEFAULT_STATE_DIR = Path(".fedgen") / "state"

__all__ = ["DEFAULT_STATE_DIR", "Backup", "StateDocument", "StateStore", "default_state_dir", "federation_store", "open_store"]


def default_state_dir(repo: Path, federation: str | None) -> Path:
    """<repo>/.fedgen/state/<federation>: one state per federation, so several can share a repo."""
    return repo / DEFAULT_STATE_DIR / federation if federation else repo / DEFAULT_STATE_DIR


def open_store(location: str | None, repo: Path, federation: str | None = None, *, forbidden_buckets: Collection[str] = ()) -> StateStore:
    """The store a --state value names: a folder or gs://bucket/prefix; default .fedgen/state/<federation>.

    A gs:// location in one of `forbidden_buckets` is an InputError. Opening a store touches nothing.
    """
    if location and location.startswith("gs://"):
        from fedgen.state.gcs import GcsStore

        store = GcsStore.from_url(location)
        if store.bucket_name in forbidden_buckets:
            raise InputError(
                f"--state {location}: bucket {store.bucket_name} is mounted by the federation's workloads (the server's "
                "workspace), so the CA key would be readable and writable from the server pod; keep the state in a "
                "separate private bucket"
            )
        return store
    from fedgen.state.local import LocalStore

    if location:
        return LocalStore(Path(location))
    # The default folder's parent .fedgen/state is fedgen's too, so it is kept owner-only as well.
    return LocalStore(default_state_dir(repo, federation), private_parents=1 if federation else 0)


def federation_store(fed: Federation, location: str | None, repo: Path) -> StateStore:
    """open_store for a loaded spec: refuses a location inside any bucket its rendered workloads reach."""
    return open_store(location, repo, fed.name, forbidden_buckets=fed.workload_buckets)
