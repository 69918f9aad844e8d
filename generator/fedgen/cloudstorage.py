"""Cloud Storage plumbing shared by the GCS state and workspace push: one client, retries with a
deadline, and every storage failure turned into one ExternalError line (exit 3).

Credentials: Application Default Credentials. With STORAGE_EMULATOR_HOST set (tests, fake-gcs-server), the
client uses anonymous credentials and the project from GOOGLE_CLOUD_PROJECT (or none). A command that only
reads may go on without credentials (reading_client): anonymously, which lists what a bucket shows allUsers. Transient failures
are retried for FEDGEN_GCS_RETRY_SECONDS (default 60) before giving up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError, InputError

if TYPE_CHECKING:  # imported lazily at run time: google-cloud-storage is slow to import
    from google.cloud.storage import Client

SCHEME = "gs://"
RETRY_ENV = "FEDGEN_GCS_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 60.0
# Per-request (connect, read) timeout in seconds.
REQUEST_TIMEOUT = (10, 120)
# Bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, -, _ and dots.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


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


def storage_client(where: str = "Cloud Storage", *, needs: str | None = None) -> Client:
    """A Cloud Storage client: ADC in production, anonymous against STORAGE_EMULATOR_HOST. needs: what the
    caller will do, named in the error when there are no credentials."""
    with storage_errors(where, needs=needs):
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "fedgen-emulator"
            return storage.Client(project=project, credentials=AnonymousCredentials())
        return storage.Client()


def reading_client(where: str, *, needs: str) -> tuple[Client, bool]:
    """(client, anonymous): ADC when there are any, else an anonymous client, which can list and read what a
    bucket grants to allUsers (a public listing): for commands that only read and need no credentials then."""
    with storage_errors(where, needs=needs):
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return storage_client(where, needs=needs), False
        try:
            return storage.Client(), False
        except DefaultCredentialsError:
            return storage.Client.create_anonymous_client(), True


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


def describe_storage_error(exc: BaseException, where: str, bucket: str | None = None, needs: str | None = None) -> ExternalError:
    """One line for a storage failure: what failed, why, and what to do. needs: the permissions the caller's
    operation takes (default: roles/storage.objectUser on the bucket), named when they are missing."""
    from google.api_core import exceptions as gx
    from google.auth import exceptions as auth_exc

    needed = f"; it needs {needs}" if needs else ""
    if isinstance(exc, gx.RetryError) and exc.cause is not None:
        inner = describe_storage_error(exc.cause, where, bucket, needs)
        return ExternalError(f"{inner} (gave up after retrying; set {RETRY_ENV} to wait longer)")
    if isinstance(exc, auth_exc.InvalidOperation):  # a 401 to an anonymous client, which cannot log in
        return ExternalError(
            f"{where}: refused to a caller without credentials ({_first_line(exc)[:160]}); "
            f"run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS{needed}"
        )
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return ExternalError(
            f"{where}: no usable Google Cloud credentials ({_first_line(exc)[:160]}); "
            f"run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS{needed}"
        )
    if isinstance(exc, auth_exc.RefreshError):
        return ExternalError(f"{where}: the Google Cloud credentials were refused ({_first_line(exc)}); log in again")
    if isinstance(exc, gx.NotFound):
        what = f"bucket {bucket}" if bucket else "the bucket"
        return ExternalError(f"{where}: {what} does not exist or these credentials cannot see it")
    if isinstance(exc, gx.Forbidden):
        return ExternalError(f"{where}: permission denied; the credentials need {needs or 'roles/storage.objectUser on the bucket'}")
    if isinstance(exc, gx.Unauthorized):
        return ExternalError(f"{where}: not authenticated; run `gcloud auth application-default login`{needed}")
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
def storage_errors(where: str, bucket: str | None = None, *, needs: str | None = None) -> Iterator[None]:
    """Turn storage library failures inside the block into one-line ExternalErrors (see describe_storage_error)."""
    try:
        yield
    except ExternalError:
        raise
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise ExternalError(f"{where}: google-cloud-storage is not installed ({exc})") from None
    except Exception as exc:
        if isinstance(exc, _storage_exception_types()):
            raise describe_storage_error(exc, where, bucket, needs) from None
        raise


def crc32c_b64(data: bytes) -> str:
    """CRC32C as Cloud Storage reports it (Blob.crc32c): base64 of the big-endian 4 bytes."""
    import base64

    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
