"""Upload what the NVFlare server's workspace needs to the workspace bucket, skipping what is already there.

The bucket (`fed.workspace.bucket_name`) is mounted by gcsfuse at /workspace/nvfl in the server pod (see
fedgen.render.server). Layout under `<project>/<server>/`:

    jobs-storage/       NVFlare's job store (resources.json job_manager uri_root). Written by the server.
    snapshot-storage/   NVFlare's snapshot persistor root. Written by the server.
    transfer/<job>/     the admin transfer folder: job folders given with `--jobs DIR`, one per folder name.

What the push really has to create: nothing but the job folders. The server creates its two store roots
itself (NVFlare's FilesystemStorage makes a missing root_dir with os.makedirs, and gcsfuse turns the mkdir into
a "folder/" marker object), and with `implicit-dirs` (the mount option the Deployment uses) every parent
folder of an object is visible without a marker. Placeholder objects would add nothing but objects to keep.
The startup kit is NOT on the bucket: it reaches the pod as ConfigMaps and a SealedSecret.

`transfer/` is NVFlare's name for the folder an admin session submits jobs from (fed_admin.json upload_dir):
an admin whose session runs against the mounted workspace (the reference architecture's `kubectl exec` flow)
or who syncs that folder into the admin kit (`gcloud storage rsync`) runs `submit_job <job>`.

Guarantees:
- Never uploads a private key: any file named *.key or containing "PRIVATE KEY" refuses the whole push
  before anything is uploaded (as do symlinks and special files in a job folder).
- Skips objects whose CRC32C (and size) already match; objects are never deleted.
- Each upload carries an `if_generation_match` precondition (0 to create, the listed generation to update),
  so a concurrent writer is detected, not overwritten. Uploads are single-request (multipart, up to 8 MiB) or
  resumable (larger); either way Cloud Storage makes the object visible only once complete, so an
  interrupted push leaves no half object that looks complete, and a rerun uploads exactly what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError, InputError
from fedgen.spec import Federation, load_federation

if TYPE_CHECKING:
    from fedgen.state import StateStore

TRANSFER = "transfer"
JOB_STORE = "jobs-storage"
SNAPSHOT_STORE = "snapshot-storage"
# NVFlare reads a job's meta file in any of its config formats.
JOB_META_FILES = ("meta.json", "meta.conf", "meta.yml", "meta.yaml")
KEY_MARKER = b"PRIVATE KEY"
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 1 << 20
_MAX_LISTED = 5


@dataclass(frozen=True)
class WorkspaceLayout:
    bucket: str
    prefix: str  # <project>/<server>
    job_store: str
    snapshot_store: str
    transfer: str

    def url(self, name: str = "") -> str:
        return f"gs://{self.bucket}/{name}"


def workspace_layout(fed: Federation) -> WorkspaceLayout:
    """The bucket paths, derived from where the rendered Deployment mounts the bucket and keeps its job store."""
    from fedgen.render.layout import job_store_root
    from fedgen.spec.model import WORKSPACE_MOUNT

    root = job_store_root(fed)
    if not root.startswith(WORKSPACE_MOUNT.rstrip("/") + "/"):
        raise ExternalError(f"the job store {root} is not on the workspace mount {WORKSPACE_MOUNT}")
    prefix = root[len(WORKSPACE_MOUNT.rstrip("/")) + 1 :]
    return WorkspaceLayout(
        bucket=fed.workspace.bucket_name,
        prefix=prefix,
        job_store=f"{prefix}/{JOB_STORE}/",
        snapshot_store=f"{prefix}/{SNAPSHOT_STORE}/",
        transfer=f"{prefix}/{TRANSFER}/",
    )


@dataclass(frozen=True)
class LocalObject:
    name: str  # object name in the bucket
    path: Path
    size: int
    crc32c: str  # base64, as Cloud Storage reports it


@dataclass(frozen=True)
class RemoteObject:
    name: str
    generation: int
    size: int
    crc32c: str | None
    md5: str | None


@dataclass(frozen=True)
class PushAction:
    name: str
    action: str  # create | update | unchanged
    size: int
    path: Path
    generation: int  # the precondition the upload carries: 0 (must not exist) or the generation listed


@dataclass(frozen=True)
class PushResult:
    bucket: str
    prefix: str
    actions: tuple[PushAction, ...]
    dry_run: bool
    notes: tuple[str, ...] = ()

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a.action == action)

    @property
    def changes(self) -> tuple[PushAction, ...]:
        return tuple(a for a in self.actions if a.action != "unchanged")


# ------------------------------------------------------------------------------------------- local side


def collect_jobs(layout: WorkspaceLayout, jobs: Sequence[Path]) -> list[LocalObject]:
    """Every file of the job folders as the objects it becomes; refuses keys, links and non-job folders."""
    objects: list[LocalObject] = []
    seen: dict[str, Path] = {}
    offenders: list[str] = []
    for job in jobs:
        folder = job.resolve()
        if not folder.is_dir():
            raise InputError(f"--jobs {job}: not a folder")
        name = folder.name
        if not _JOB_NAME.match(name):
            raise InputError(f"--jobs {job}: job folder name {name!r} must use letters, digits, '.', '_' or '-'")
        if name in seen:
            raise InputError(f"--jobs {job}: a job named {name!r} is already given ({seen[name]})")
        seen[name] = job
        if not any((folder / meta).is_file() for meta in JOB_META_FILES):
            raise InputError(f"--jobs {job}: not an NVFlare job folder (no {' / '.join(JOB_META_FILES)})")
        for path in _walk(folder, job):
            rel = path.relative_to(folder).as_posix()
            size, crc, has_key = _scan(path)
            if path.name.endswith(".key") or has_key:
                offenders.append(str(job / rel))
                continue
            objects.append(LocalObject(f"{layout.transfer}{name}/{rel}", path, size, crc))
    if offenders:
        shown = ", ".join(offenders[:_MAX_LISTED]) + (f" and {len(offenders) - _MAX_LISTED} more" if len(offenders) > _MAX_LISTED else "")
        raise InputError(f"refusing to push private keys (files named *.key or containing 'PRIVATE KEY'): {shown}; remove them from the job folders")
    return sorted(objects, key=lambda o: o.name)


def _walk(folder: Path, shown: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink():
            raise InputError(f"--jobs {shown}: {rel} is a symbolic link; copy the file in instead")
        if path.is_dir():
            continue
        if not path.is_file():
            raise InputError(f"--jobs {shown}: {rel} is not a regular file")
        yield path


def _scan(path: Path) -> tuple[int, str, bool]:
    """(size, CRC32C as base64, contains KEY_MARKER), reading the file once in chunks."""
    import base64

    import google_crc32c

    checksum = google_crc32c.Checksum()
    size = 0
    found = False
    tail = b""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                checksum.update(chunk)
                size += len(chunk)
                if not found and KEY_MARKER in tail + chunk:
                    found = True
                tail = chunk[-(len(KEY_MARKER) - 1) :]
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    return size, base64.b64encode(checksum.digest()).decode(), found


# ------------------------------------------------------------------------------------------- the plan


def plan_push(local: Sequence[LocalObject], remote: Mapping[str, RemoteObject]) -> list[PushAction]:
    """create (absent), update (checksum differs) or unchanged, with the generation each upload requires."""
    actions: list[PushAction] = []
    for obj in sorted(local, key=lambda o: o.name):
        have = remote.get(obj.name)
        if have is None:
            actions.append(PushAction(obj.name, "create", obj.size, obj.path, 0))
        elif _matches(obj, have):
            actions.append(PushAction(obj.name, "unchanged", obj.size, obj.path, have.generation))
        else:
            actions.append(PushAction(obj.name, "update", obj.size, obj.path, have.generation))
    return actions


def _matches(obj: LocalObject, have: RemoteObject) -> bool:
    if have.size != obj.size:
        return False
    if have.crc32c:
        return have.crc32c == obj.crc32c
    if have.md5:
        return have.md5 == _md5_b64(obj.path)
    return False


def _md5_b64(path: Path) -> str:
    import base64
    import hashlib

    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode()


# ------------------------------------------------------------------------------------------- the push


def push(
    *,
    spec: Path,
    jobs: Sequence[Path] = (),
    state: str | None = None,
    repo: Path = Path("."),
    dry_run: bool = False,
    progress: Callable[[str, PushAction], None] | None = None,
) -> PushResult:
    """Plan against the bucket's listing and (unless dry_run) upload the difference.

    Holds the federation's state lock for the duration (so two pushes, or a push and a render, of one
    federation never interleave) and checks the state belongs to this federation; nothing of the state is
    uploaded. A dry run only compares with the bucket's listing: it reads no state, takes no lock and writes
    nothing, and without credentials lists anonymously (enough for a bucket that allows public listing); a
    refusal names the permission it needs. `progress(url, action)` is called after each upload (the CLI
    prints it).
    """
    from fedgen.state import federation_store

    fed = load_federation(spec)
    layout = workspace_layout(fed)
    local = collect_jobs(layout, jobs)
    store = federation_store(fed, state, repo.resolve())  # a forbidden --state is refused, dry run or not
    notes = [f"{layout.job_store} and {layout.snapshot_store} are created by the server itself on its first start"]
    if dry_run:
        remote, anonymous = _dry_listing(layout)
        actions = plan_push(local, remote)
        if anonymous:
            notes.append(f"no Google Cloud credentials: listed gs://{layout.bucket}/{layout.transfer} anonymously")
    else:
        with store.lock():
            actions, bucket = _plan(store, fed, local, layout)
            by_name = {o.name: o for o in local}
            for action in actions:
                if action.action == "unchanged":
                    continue
                _upload(bucket, action, by_name[action.name], layout)
                if progress is not None:
                    progress(layout.url(action.name), action)
    if not jobs:
        notes.append(f"no --jobs given: checked that gs://{layout.bucket}/ is reachable; nothing to upload")
    return PushResult(layout.bucket, layout.prefix, tuple(actions), dry_run, tuple(notes))


def _needs(bucket: str, *, dry_run: bool) -> str:
    if dry_run:
        return f"storage.objects.list on bucket {bucket} (roles/storage.objectViewer)"
    return f"storage.objects.list, get, create and delete (to replace a changed file) on bucket {bucket} (roles/storage.objectUser)"


def _dry_listing(layout: WorkspaceLayout) -> tuple[dict[str, RemoteObject], bool]:
    """The transfer folder's listing, with credentials when there are any, else anonymously: (listing, anonymous)."""
    from fedgen.cloudstorage import reading_client, storage_errors

    where = f"workspace {layout.url(layout.prefix)}/"
    needs = _needs(layout.bucket, dry_run=True)
    client, anonymous = reading_client(where, needs=needs)
    if anonymous:
        where = f"{where} (listed anonymously: no Google Cloud credentials found)"
    with storage_errors(where, layout.bucket, needs=needs):
        return _list(client.bucket(layout.bucket), layout.transfer), anonymous


def _plan(store: StateStore, fed: Federation, local: Sequence[LocalObject], layout: WorkspaceLayout) -> tuple[list[PushAction], Any]:
    """Check the state belongs to the federation, list the bucket, plan: (actions, bucket). Reads only."""
    from fedgen.cloudstorage import storage_client, storage_errors

    store.load().require_project(fed.name, store.description)
    where = f"workspace {layout.url(layout.prefix)}/"
    needs = _needs(layout.bucket, dry_run=False)
    with storage_errors(where, layout.bucket, needs=needs):
        bucket = storage_client(where, needs=needs).bucket(layout.bucket)
        remote = _list(bucket, layout.transfer)
    return plan_push(local, remote), bucket


def _list(bucket: Any, prefix: str) -> dict[str, RemoteObject]:
    from fedgen.cloudstorage import REQUEST_TIMEOUT, retry_policy

    out: dict[str, RemoteObject] = {}
    for blob in bucket.list_blobs(prefix=prefix, retry=retry_policy(), timeout=REQUEST_TIMEOUT):
        out[blob.name] = RemoteObject(blob.name, int(blob.generation), int(blob.size or 0), blob.crc32c, blob.md5_hash)
    return out


def _upload(bucket: Any, action: PushAction, local: LocalObject, layout: WorkspaceLayout) -> None:
    from google.api_core.exceptions import PreconditionFailed

    from fedgen.cloudstorage import REQUEST_TIMEOUT, retry_policy, storage_errors

    url = layout.url(action.name)
    with storage_errors(f"upload {url}", layout.bucket, needs=_needs(layout.bucket, dry_run=False)):
        blob = bucket.blob(action.name)
        try:
            blob.upload_from_filename(
                str(action.path),
                content_type="application/octet-stream",
                if_generation_match=action.generation,
                checksum="crc32c",
                retry=retry_policy(),
                timeout=REQUEST_TIMEOUT,
            )
        except PreconditionFailed:
            current = bucket.get_blob(action.name, retry=retry_policy(), timeout=REQUEST_TIMEOUT)
            if current is not None and current.crc32c == local.crc32c and int(current.size or 0) == local.size:
                return  # our own upload, whose response was lost and whose retry then failed the precondition
            raise ExternalError(
                f"{url} was changed by another writer during the push (generation precondition failed); rerun `fedgen workspace push`"
            ) from None
