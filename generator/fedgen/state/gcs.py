"""State in Google Cloud Storage (`--state gs://bucket/prefix`).

Layout under the prefix:
    <prefix>/state.json   the StateDocument (the root CA key and every participant's key: the most sensitive
                          object of the federation). Written only with `if_generation_match=<generation read>`
                          (0 when it did not exist), so two writers can never overwrite each other: the second
                          gets an ExternalError naming the conflict and nothing is saved.
    <prefix>/lock         {"host", "pid", "since", "id"}: created with `if_generation_match=0` for the whole
                          render, deleted on exit with its own generation as precondition. A held lock is an
                          ExternalError naming the holder; `fedgen state unlock --state gs://...` removes a lock
                          whose process is gone (see `force_unlock`).

Security: Cloud Storage has no owner-only file mode. The bucket must be private (uniform bucket-level access,
public access prevention enforced, no allUsers/allAuthenticatedUsers bindings) and only the operators who
render may hold roles/storage.objectUser on it; object versioning lets you recover an earlier state. fedgen
never prints or logs the document's content, only object names and generations.

Storage access, retries and error messages come from fedgen.gcs.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError
from fedgen.state.document import StateDocument

if TYPE_CHECKING:  # imported lazily at run time: google-cloud-storage is slow to import
    from google.cloud.storage import Bucket, Client
from fedgen.gcs import REQUEST_TIMEOUT, SCHEME, crc32c_b64, object_url, parse_gs_url, retry_policy, storage_client, storage_errors
from fedgen.state.store import UnlockResult

DOCUMENT = "state.json"
LOCK = "lock"


# ------------------------------------------------------------------------------------------ lock records


def holder_record() -> dict[str, Any]:
    """Who holds a lock: host, pid, since (UTC ISO 8601) and a random id telling two holders apart."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "id": uuid.uuid4().hex,
    }


def describe_holder(record: dict[str, Any] | None) -> str:
    if not record:
        return "an unknown process"
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')} since {record.get('since', '?')}"


def _parse_record(data: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------------------ the store


class GcsStore:
    """A StateStore in one Cloud Storage object, guarded by generation preconditions and a lock object."""

    def __init__(self, bucket: str, prefix: str, client: Client | None = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix
        self.description = f"{SCHEME}{bucket}/{prefix}" if prefix else f"{SCHEME}{bucket}"
        self._client = client
        self._generation: int | None = None  # generation of state.json as last read or written; 0 = absent

    @classmethod
    def from_url(cls, url: str) -> GcsStore:
        bucket, prefix = parse_gs_url(url)
        return cls(bucket, prefix)

    def _name(self, leaf: str) -> str:
        return f"{self.prefix}/{leaf}" if self.prefix else leaf

    def _bucket(self) -> Bucket:
        if self._client is None:
            self._client = storage_client(f"state {self.description}")
        return self._client.bucket(self.bucket_name)

    @property
    def document_url(self) -> str:
        return object_url(self.bucket_name, self._name(DOCUMENT))

    @property
    def lock_url(self) -> str:
        return object_url(self.bucket_name, self._name(LOCK))

    # -- document

    def load(self) -> StateDocument:
        """The document and its generation (remembered for save); an empty document when absent."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        name = self._name(DOCUMENT)
        with storage_errors(f"state {self.description}", self.bucket_name):
            bucket = self._bucket()
            for _ in range(5):
                blob = bucket.get_blob(name, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
                if blob is None:
                    self._generation = 0
                    return StateDocument()
                try:
                    data = blob.download_as_bytes(
                        if_generation_match=blob.generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT
                    )
                except (NotFound, PreconditionFailed):
                    continue  # replaced or deleted between the metadata read and the download: read again
                self._generation = int(blob.generation)
                return StateDocument.from_bytes(data, self.document_url)
        raise ExternalError(f"state {self.document_url}: keeps changing while being read; is another render running?")

    def save(self, document: StateDocument) -> None:
        """Replace the document only if it is still the generation load() read (0: only if still absent)."""
        from google.api_core.exceptions import PreconditionFailed

        expected = self._generation if self._generation is not None else 0
        data = document.to_bytes()
        name = self._name(DOCUMENT)
        with storage_errors(f"state {self.description}", self.bucket_name):
            blob = self._bucket().blob(name)
            blob.cache_control = "no-store"
            try:
                blob.upload_from_string(
                    data,
                    content_type="application/json",
                    if_generation_match=expected,
                    checksum="crc32c",
                    retry=retry_policy(),
                    timeout=REQUEST_TIMEOUT,
                )
            except PreconditionFailed:
                current = self._bucket().get_blob(name, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
                if current is not None and current.crc32c == crc32c_b64(data) and current.size == len(data):
                    # Our own write, whose response was lost and whose retry then failed the precondition.
                    self._generation = int(current.generation)
                    return
                found = "deleted" if current is None else f"now generation {current.generation}"
                raise ExternalError(
                    f"state {self.document_url} was changed by another writer since it was read "
                    f"(expected generation {expected}, {found}); nothing was saved: rerun to start from the current state"
                ) from None
            self._generation = int(blob.generation)

    # -- lock

    def read_lock(self) -> tuple[dict[str, Any] | None, int | None]:
        """(holder record, generation) of the lock object; (None, None) when there is no lock."""
        with storage_errors(f"state {self.description}", self.bucket_name):
            blob = self._bucket().get_blob(self._name(LOCK), retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            if blob is None:
                return None, None
            from google.api_core.exceptions import NotFound

            try:
                data = blob.download_as_bytes(retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            except NotFound:
                return None, None
            return _parse_record(data) or {}, int(blob.generation)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Create <prefix>/lock with if_generation_match=0; delete it (with its generation) on exit."""
        from google.api_core.exceptions import PreconditionFailed

        record = holder_record()
        payload = (json.dumps(record, sort_keys=True) + "\n").encode()
        with storage_errors(f"state {self.description}", self.bucket_name):
            blob = self._bucket().blob(self._name(LOCK))
            blob.cache_control = "no-store"
            try:
                blob.upload_from_string(
                    payload,
                    content_type="application/json",
                    if_generation_match=0,
                    retry=retry_policy(),
                    timeout=REQUEST_TIMEOUT,
                )
                generation = int(blob.generation)
            except PreconditionFailed:
                holder, held_generation = self.read_lock()
                if holder and holder.get("id") == record["id"] and held_generation is not None:
                    generation = held_generation  # our own create, whose response was lost and retried
                else:
                    raise ExternalError(self._held_message(holder)) from None
        try:
            yield
        except BaseException:
            self._release(generation, strict=False)
            raise
        self._release(generation, strict=True)

    def _held_message(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            return f"state {self.description} was locked a moment ago and is free again; retry"
        return (
            f"state {self.description} is locked by {describe_holder(holder)}; "
            f"if that process is gone, run `fedgen state unlock --state {self.description}`"
        )

    def _release(self, generation: int, *, strict: bool) -> None:
        """Delete our lock. Already gone or replaced (someone ran `state unlock`) is not ours to touch.

        Nothing is lost when that happens: state.json itself is only written with generation preconditions.
        """
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            with storage_errors(f"state {self.description}", self.bucket_name):
                try:
                    self._bucket().delete_blob(
                        self._name(LOCK), if_generation_match=generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT
                    )
                except (NotFound, PreconditionFailed):
                    pass
        except ExternalError as exc:
            if strict:
                raise ExternalError(
                    f"{exc}; the lock was not released: run `fedgen state unlock --state {self.description}`"
                ) from None

    def force_unlock(self) -> UnlockResult:
        """Remove the lock object, unless it is held by a live process on this very host."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        holder, generation = self.read_lock()
        if generation is None:
            return UnlockResult(self.description, removed=False, message=f"state {self.description} is not locked")
        if holder and holder.get("host") == socket.gethostname() and _pid_alive(holder.get("pid")):
            raise ExternalError(
                f"state {self.description} is locked by {describe_holder(holder)}, a process that is still running "
                "on this host; not removed (stop that process first)"
            )
        with storage_errors(f"state {self.description}", self.bucket_name):
            try:
                self._bucket().delete_blob(
                    self._name(LOCK), if_generation_match=generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT
                )
            except NotFound:
                return UnlockResult(self.description, removed=False, message=f"state {self.description} is not locked")
            except PreconditionFailed:
                raise ExternalError(f"state {self.description}: the lock changed hands while unlocking; check again") from None
        return UnlockResult(
            self.description, removed=True, message=f"removed the lock of {describe_holder(holder)} from {self.description}"
        )
