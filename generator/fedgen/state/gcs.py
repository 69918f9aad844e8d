"""State in Google Cloud Storage (`--state gs://bucket/prefix`).

Layout under the prefix:
    <prefix>/state.json   the StateDocument (the root CA key and every participant's key: the most sensitive
                          object of the federation). Written only with `if_generation_match=<generation read>`
                          (0 when it did not exist), so two writers can never overwrite each other: the second
                          gets an ExternalError naming the conflict and nothing is saved.
    <prefix>/lock         the lease of the writer holding the state: {"host", "pid", "user", "command", "since",
                          "id", "lease_seconds"}. Created with `if_generation_match=0`; renewed while held by
                          rewriting it with `if_generation_match=<its generation>`; deleted on exit with its
                          generation as precondition. It expires `lease_seconds` after its last write, by the
                          object's `updated` time (set by Cloud Storage, so a holder's wrong clock cannot make
                          its lease last forever or end at once). A lease past its expiry may be taken over by
                          the next writer (a rewrite with the expired lease's generation as precondition, so
                          only one of several contenders wins). `fedgen state unlock` removes a lease whose
                          holder is gone; a live lease of another host only with --force (see `force_unlock`).
    <prefix>/state.json.backup-<UTC time>   a copy made before an irreversible step (a new root CA, `fedgen
                          remove`, `enroll approve --replace`, `state unlock --force`); never replaced.

Lease length, and why renewal rather than one long expiry: the commands that hold the lease (render, enroll
approve, workspace push) have no useful upper bound (a cold render of a large federation, a push of a large
job over a slow link), so a fixed expiry long enough for all of them would keep a crashed holder's lease for
hours. Instead a holder renews its lease every RENEW_SECONDS from a background thread, and a lease expires
LEASE_SECONDS after its last renewal: a crashed holder blocks others for at most LEASE_SECONDS, and a live
one survives a few failed renewals (transient storage errors). A holder that was paused past its expiry (a
suspended laptop) may have lost the lease: its renewal then fails its precondition, and it refuses to save.
Even then nothing can be overwritten, since state.json is only written with generation preconditions.

`load()` only reads (two GETs): `render --check`, bundles and `workspace push --dry-run` need read access
alone and write nothing, not even the lease.

Security: Cloud Storage has no owner-only file mode. The bucket must be private (uniform bucket-level access,
public access prevention enforced, no allUsers/allAuthenticatedUsers bindings) and only the operators who
render may hold roles/storage.objectUser on it; it must not be a bucket any workload mounts (refused: see
fedgen.state.federation_store); object versioning lets you recover an earlier state. fedgen never prints or
logs the document's content, only object names and generations.

Storage access, retries and error messages come from fedgen.cloudstorage.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError
from fedgen.holder import describe_holder, holder_record, on_this_host, pid_alive
from fedgen.state.document import StateDocument
from fedgen.untrusted import loads_json

if TYPE_CHECKING:  # imported lazily at run time: google-cloud-storage is slow to import
    from google.cloud.storage import Bucket, Client
from fedgen.cloudstorage import REQUEST_TIMEOUT, SCHEME, crc32c_b64, object_url, parse_gs_url, retry_policy, storage_client, storage_errors
from fedgen.state.store import Backup, UnlockResult, backup_name

DOCUMENT = "state.json"
LOCK = "lock"
LEASE_SECONDS = 300
RENEW_SECONDS = 60


# ------------------------------------------------------------------------------------------ leases


@dataclass(frozen=True)
class Lease:
    """The lock object as read: its holder record, generation and expiry (None: a lock without a lease
    time, written by an older fedgen; it never expires by itself)."""

    holder: dict[str, Any]
    generation: int
    expires: datetime | None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(timezone.utc)) >= self.expires

    def describe(self) -> str:
        if self.expires is None:
            return f"{describe_holder(self.holder)}, with no lease expiry"
        return f"{describe_holder(self.holder)}, lease {'expired' if self.expired() else 'valid until'} {_iso(self.expires)}"


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "?"


def _parse_record(data: bytes) -> dict[str, Any] | None:
    try:
        rec = loads_json(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def _lease_of(record: dict[str, Any], generation: int, updated: datetime | None) -> Lease:
    seconds = record.get("lease_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0 or updated is None:
        return Lease(record, generation, None)
    return Lease(record, generation, updated + timedelta(seconds=seconds))


# ------------------------------------------------------------------------------------------ the store


class GcsStore:
    """A StateStore in one Cloud Storage object, guarded by generation preconditions and a lease."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Client | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self.bucket_name = bucket
        self.prefix = prefix
        self.description = f"{SCHEME}{bucket}/{prefix}" if prefix else f"{SCHEME}{bucket}"
        self._client = client
        self._generation: int | None = None  # generation of state.json as last read or written; 0 = absent
        self._lease_seconds = lease_seconds
        self._renew_seconds = renew_seconds
        self._renewal: _Renewal | None = None  # while this store holds the lease

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
        with storage_errors(f"state {self.description}", self.bucket_name):
            read = self._read_document(self._bucket())
        if read is None:
            self._generation = 0
            return StateDocument()
        data, self._generation = read
        return StateDocument.from_bytes(data, self.document_url)

    def _read_document(self, bucket: Bucket) -> tuple[bytes, int] | None:
        """(bytes, generation) of one consistent version of the document; None when there is none."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        name = self._name(DOCUMENT)
        for _ in range(5):
            blob = bucket.get_blob(name, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            if blob is None:
                return None
            try:
                data = blob.download_as_bytes(if_generation_match=blob.generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            except (NotFound, PreconditionFailed):
                continue  # replaced or deleted between the metadata read and the download: read again
            return data, int(blob.generation)
        raise ExternalError(f"state {self.document_url}: keeps changing while being read; is another render running?")

    def save(self, document: StateDocument) -> None:
        """Replace the document only if it is still the generation load() read (0: only if still absent),
        and, when this store holds the lease, only while it still does."""
        from google.api_core.exceptions import PreconditionFailed

        if self._renewal is not None:
            self._check_still_held(self._renewal)
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

    def backup(self) -> Backup:
        """Copy state.json to <prefix>/state.json.backup-<UTC time> in the same bucket (created with
        if_generation_match=0, so no copy is ever replaced); a Backup without a copy when there is no document."""
        from google.api_core.exceptions import PreconditionFailed

        with storage_errors(f"state {self.description}", self.bucket_name):
            bucket = self._bucket()
            read = self._read_document(bucket)
            if read is None:
                return Backup(self.description, None)
            data = read[0]
            for attempt in range(100):
                copy = bucket.blob(self._name(backup_name(DOCUMENT, attempt)))
                copy.cache_control = "no-store"
                try:
                    copy.upload_from_string(
                        data, content_type="application/json", if_generation_match=0, checksum="crc32c", retry=retry_policy(), timeout=REQUEST_TIMEOUT
                    )
                except PreconditionFailed:
                    continue  # that name is taken
                return Backup(self.description, object_url(self.bucket_name, copy.name))
        raise ExternalError(f"state {self.description}: no free backup name for {DOCUMENT}")

    # -- lock (a lease: see the module docstring)

    def read_lease(self, bucket: Bucket | None = None) -> Lease | None:
        """The lock object as a Lease; None when there is none. Reads only."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with storage_errors(f"state {self.description}", self.bucket_name):
            bucket = bucket or self._bucket()
            for _ in range(5):
                blob = bucket.get_blob(self._name(LOCK), retry=retry_policy(), timeout=REQUEST_TIMEOUT)
                if blob is None:
                    return None
                try:
                    data = blob.download_as_bytes(if_generation_match=blob.generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
                except NotFound:
                    return None
                except PreconditionFailed:
                    continue  # renewed or replaced between the metadata read and the download
                return _lease_of(_parse_record(data) or {}, int(blob.generation), blob.updated)
        raise ExternalError(f"state {self.description}: the lock keeps changing while being read; retry")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Take the lease (create it, or take over an expired one), renew it while held, release it on exit."""
        record = {**holder_record(), "lease_seconds": self._lease_seconds}
        payload = (json.dumps(record, sort_keys=True) + "\n").encode()
        renewal = _Renewal(self, payload, record["id"], self._acquire(payload, record["id"]))
        self._renewal = renewal
        renewal.start()
        try:
            yield
        except BaseException:
            renewal.stop()
            self._renewal = None
            self._release(renewal, strict=False)
            raise
        renewal.stop()
        self._renewal = None
        self._release(renewal, strict=True)

    def _write_lease(self, bucket: Bucket, payload: bytes, generation: int) -> int:
        """Write the lease object with if_generation_match=generation; its new generation."""
        blob = bucket.blob(self._name(LOCK))
        blob.cache_control = "no-store"
        blob.upload_from_string(payload, content_type="application/json", if_generation_match=generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
        return int(blob.generation)

    def _acquire(self, payload: bytes, lease_id: str) -> int:
        from google.api_core.exceptions import PreconditionFailed

        with storage_errors(f"state {self.description}", self.bucket_name):
            for _ in range(5):
                try:
                    return self._write_lease(self._bucket(), payload, 0)
                except PreconditionFailed:
                    pass
                lease = self.read_lease()
                if lease is None:
                    continue  # released in between: try to create it again
                if lease.holder.get("id") == lease_id:
                    return lease.generation  # our own write, whose response was lost and whose retry then failed
                if not lease.expired():
                    raise ExternalError(self._held_message(lease))
                try:  # take over the expired lease; of several contenders, the generation lets one win
                    return self._write_lease(self._bucket(), payload, lease.generation)
                except PreconditionFailed:
                    continue
        raise ExternalError(f"state {self.description}: the lock keeps changing hands; retry")

    def _held_message(self, lease: Lease) -> str:
        return (
            f"state {self.description} is locked by {lease.describe()}; retry when it finishes, or, if that process "
            f"is gone, run `fedgen state unlock --state {self.description}`"
        )

    def _check_still_held(self, renewal: _Renewal) -> None:
        lease = self.read_lease()
        if renewal.lost or lease is None or lease.holder.get("id") != renewal.lease_id:
            renewal.lost = True
            now = "nobody holds it now" if lease is None else f"it is now held by {lease.describe()}"
            raise ExternalError(f"state {self.description}: this command's lock was taken over or removed while it ran ({now}); nothing was saved: rerun")

    def _release(self, renewal: _Renewal, *, strict: bool) -> None:
        """Delete our lease. Already gone or replaced (taken over, or `state unlock --force`) is not ours to touch.

        Nothing is lost when that happens: state.json itself is only written with generation preconditions.
        """
        from google.api_core.exceptions import NotFound, PreconditionFailed

        if renewal.lost:
            return
        try:
            with storage_errors(f"state {self.description}", self.bucket_name):
                lease = self.read_lease()  # the precondition below is the guard; this spares a needless delete
                if lease is None or lease.holder.get("id") != renewal.lease_id:
                    return
                try:
                    self._bucket().delete_blob(self._name(LOCK), if_generation_match=lease.generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
                except (NotFound, PreconditionFailed):
                    pass
        except ExternalError as exc:
            if strict:
                raise ExternalError(
                    f"{exc}; the lock was not released (it expires by itself within {self._lease_seconds:g} s, or run "
                    f"`fedgen state unlock --state {self.description}`)"
                ) from None

    def force_unlock(self, *, force: bool = False) -> UnlockResult:
        """Remove the lease when its holder is gone: a process of this host that no longer runs, or an expired
        lease. A live process on this host is never unlocked; a live lease of another host only with force."""
        lease = self.read_lease()
        if lease is None:
            return UnlockResult(self.description, removed=False, message=f"state {self.description} is not locked")
        if on_this_host(lease.holder) and pid_alive(lease.holder.get("pid")):
            raise ExternalError(
                f"state {self.description} is locked by {lease.describe()}, a process that is still running on this host; not removed (stop that process first)"
            )
        if not on_this_host(lease.holder) and not lease.expired() and not force:
            wait = "wait for it to finish" + (" or for its lease to expire" if lease.expires else "")
            raise ExternalError(
                f"state {self.description} is locked by {lease.describe()}, a process on another host that fedgen "
                f"cannot see; not removed: {wait}, or, if you are sure it is gone, run "
                f"`fedgen state unlock --state {self.description} --force`"
            )
        from google.api_core.exceptions import NotFound, PreconditionFailed

        with storage_errors(f"state {self.description}", self.bucket_name):
            try:
                self._bucket().delete_blob(self._name(LOCK), if_generation_match=lease.generation, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            except NotFound:
                return UnlockResult(self.description, removed=False, message=f"state {self.description} is not locked")
            except PreconditionFailed:
                raise ExternalError(f"state {self.description}: the lock changed hands while unlocking; check again") from None
        return UnlockResult(self.description, removed=True, message=f"removed the lock of {lease.describe()} from {self.description}")


class _Renewal:
    """Rewrites the lease every renew_seconds while the command runs (a daemon thread with its own client:
    storage clients are not shared across threads). A failed precondition means the lease was taken over or
    removed: `lost` is set and renewal stops; other failures are retried at the next tick."""

    def __init__(self, store: GcsStore, payload: bytes, lease_id: str, generation: int) -> None:
        self.store = store
        self.payload = payload
        self.lease_id = lease_id
        self.generation = generation
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fedgen-state-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        store = self.store
        bucket = None
        while not self._stop.wait(store._renew_seconds):
            try:
                bucket = bucket or storage_client(f"state {store.description}").bucket(store.bucket_name)
                self.generation = store._write_lease(bucket, self.payload, self.generation)
            except (PreconditionFailed, NotFound):
                try:
                    lease = store.read_lease(bucket)
                except ExternalError:
                    continue
                if lease is not None and lease.holder.get("id") == self.lease_id:
                    self.generation = lease.generation  # our own rewrite, whose response was lost
                    continue
                self.lost = True
                return
            except Exception:  # noqa: BLE001 - transient (network, auth refresh): retried at the next tick,
                continue  # and the lease lasts several renewal periods; this thread must not die of it
