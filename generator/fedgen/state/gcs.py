"""State in Google Cloud Storage (`--state gs://bucket/prefix`), and the Cloud Storage plumbing fedgen shares.

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

Credentials: Application Default Credentials. With STORAGE_EMULATOR_HOST set (tests, fake-gcs-server), the
client uses anonymous credentials and the project from GOOGLE_CLOUD_PROJECT (or none).
Every storage failure (missing bucket, permission denied, no network) becomes one ExternalError line (exit 3).
Transient failures are retried for FEDGEN_GCS_RETRY_SECONDS (default 60) before giving up.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError, InputError
from fedgen.state.document import StateDocument

if TYPE_CHECKING:  # imported lazily at run time: google-cloud-storage is slow to import
    from google.cloud.storage import Bucket, Client

SCHEME = "gs://"
DOCUMENT = "state.json"
LOCK = "lock"
RETRY_ENV = "FEDGEN_GCS_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
# Per-request (connect, read) timeout in seconds.
REQUEST_TIMEOUT = (10, 120)
# Bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, -, _ and dots.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


# --------------------------------------------------------------------------------------------- plumbing


def parse_gs_url(url: str) -> tuple[str, str]:
    """gs://bucket/some/prefix -> ("bucket", "some/prefix"); the prefix may be empty."""
    if not url.startswith(SCHEME):
        raise InputError(f"{url}: not a gs://bucket/prefix location")
    bucket, _, prefix = url[len(SCHEME) :].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket):
        raise InputError(f"{url}: {bucket!r} is not a valid Cloud Storage bucket name")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InputError(f"{url}: the prefix must not contain empty, '.' or '..' segments")
    return bucket, prefix


def object_url(bucket: str, name: str) -> str:
    return f"{SCHEME}{bucket}/{name}"


def retry_policy() -> Any:
    """google-cloud-storage's retry predicate, with a deadline fedgen controls (FEDGEN_GCS_RETRY_SECONDS)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    raw = os.environ.get(RETRY_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_RETRY_SECONDS
    except ValueError:
        raise InputError(f"{RETRY_ENV}={raw!r} is not a number of seconds") from None
    return DEFAULT_RETRY.with_timeout(max(seconds, 0.0))


def storage_client(where: str = "Cloud Storage") -> Client:
    """A Cloud Storage client: ADC in production, anonymous against STORAGE_EMULATOR_HOST."""
    with storage_errors(where):
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "fedgen-emulator"
            return storage.Client(project=project, credentials=AnonymousCredentials())
        return storage.Client()


def _endpoint() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if m:
        return m.group(1).strip()
    for marker in ("timed out", "Connection aborted", "Connection reset", "Connection refused", "Name or service not known"):
        if marker.lower() in text.lower():
            return marker
    return type(exc).__name__


def describe_storage_error(exc: BaseException, where: str, bucket: str | None = None) -> ExternalError:
    """One line for a storage failure: what failed, why, and what to do."""
    from google.api_core import exceptions as gx
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gx.RetryError) and exc.cause is not None:
        inner = describe_storage_error(exc.cause, where, bucket)
        return ExternalError(f"{inner} (gave up after retrying; set {RETRY_ENV} to wait longer)")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return ExternalError(
            f"{where}: no usable Google Cloud credentials ({_first_line(exc)[:160]}); "
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        )
    if isinstance(exc, auth_exc.RefreshError):
        return ExternalError(f"{where}: the Google Cloud credentials were refused ({_first_line(exc)}); log in again")
    if isinstance(exc, gx.NotFound):
        what = f"bucket {bucket}" if bucket else "the bucket"
        return ExternalError(f"{where}: {what} does not exist or these credentials cannot see it")
    if isinstance(exc, gx.Forbidden):
        return ExternalError(f"{where}: permission denied; the credentials need roles/storage.objectUser on the bucket")
    if isinstance(exc, gx.Unauthorized):
        return ExternalError(f"{where}: not authenticated; run `gcloud auth application-default login`")
    if isinstance(exc, gx.PreconditionFailed):
        return ExternalError(f"{where}: changed by another writer meanwhile (generation precondition failed); rerun")
    if isinstance(exc, gx.GoogleAPICallError):
        return ExternalError(f"{where}: storage error {exc.code}: {_short_message(exc)}")
    if isinstance(exc, (ConnectionError, OSError)) or _is_network_error(exc):
        return ExternalError(f"{where}: cannot reach Cloud Storage at {_endpoint()} ({_network_reason(exc)})")
    return ExternalError(f"{where}: {type(exc).__name__}: {_first_line(exc)}")


def _is_network_error(exc: BaseException) -> bool:
    import requests
    from google.auth import exceptions as auth_exc

    return isinstance(exc, (requests.RequestException, auth_exc.TransportError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _short_message(exc: Any) -> str:
    errors = getattr(exc, "errors", None) or []
    for err in errors:
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    msg = str(getattr(exc, "message", "") or exc)
    # api_core messages start with "<METHOD> <url>: "; keep what follows.
    msg = re.sub(r"^[A-Z]+ https?://\S+: ", "", msg)
    return msg.splitlines()[0][:200] if msg else type(exc).__name__


def _storage_exception_types() -> tuple[type[BaseException], ...]:
    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

    return (GoogleAPIError, GoogleAuthError, requests.RequestException, InvalidResponse, DataCorruption, ConnectionError)


@contextmanager
def storage_errors(where: str, bucket: str | None = None) -> Iterator[None]:
    """Turn storage library failures inside the block into one-line ExternalErrors."""
    try:
        yield
    except ExternalError:
        raise
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise ExternalError(f"{where}: google-cloud-storage is not installed ({exc})") from None
    except Exception as exc:
        if isinstance(exc, _storage_exception_types()):
            raise describe_storage_error(exc, where, bucket) from None
        raise


def crc32c_b64(data: bytes) -> str:
    """CRC32C as Cloud Storage reports it (Blob.crc32c): base64 of the big-endian 4 bytes."""
    import base64

    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


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


# ---------------------------------------------------------------------------------------- force unlock


@dataclass(frozen=True)
class UnlockResult:
    location: str
    removed: bool
    message: str


def force_unlock(location: str | None, repo: Path, federation: str | None = None) -> UnlockResult:
    """Remove a stale lock from a state location (what `fedgen state unlock` runs).

    gs://: deletes the lock object (refused when its holder is a live process on this host).
    A local folder (default: the federation's folder under <repo>/.fedgen/state): the lock is an flock, which the kernel drops when its holder exits, so it can never be
    stale: report whether it is held (ExternalError naming the live holder) and remove nothing. Unlinking the
    lock file under a live holder would let a second process lock a new file, breaking mutual exclusion.
    """
    if location and location.startswith(SCHEME):
        return GcsStore.from_url(location).force_unlock()
    from fedgen.state import default_state_dir

    return _local_unlock(Path(location) if location else default_state_dir(repo, federation))


def _local_unlock(path: Path) -> UnlockResult:
    import fcntl

    from fedgen.state.local import LOCK as LOCAL_LOCK

    lock_path = path / LOCAL_LOCK
    stale_note = "a local lock is released by the kernel when its holder exits, so it is never stale"
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return UnlockResult(str(path), removed=False, message=f"state {path} is not locked")
    except OSError as exc:
        raise ExternalError(f"state {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = _parse_record(lock_path.read_bytes())
            except OSError:
                holder = None
            raise ExternalError(
                f"state {path} is locked by {describe_holder(holder)}, a live process ({stale_note}); "
                "wait for it to finish or stop it"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return UnlockResult(str(path), removed=False, message=f"state {path} is not locked ({stale_note})")
