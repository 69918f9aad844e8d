"""`fedgen enroll approve`: verify a site's request, sign it with the federation's CA, commit-ready output.

Steps, all checks before any write (a refused request writes nothing):
1. The request zip passes inspect_request_zip (shape, no key, digests, CSR) and check_request (this project,
   a site the spec declares with `enrollment: request`, the spec's org).
2. If the repo already holds a different request for that site at enrollment/<fed>/requests/<site>.request.zip,
   refuse: approve what was reviewed, or replace it through a pull request first. With --key-fingerprint, the
   request's public key must have that fingerprint (the one the site sent over a second channel).
3. A key was signed for the site before (the state's record; without one, a committed signed zip issued under
   the server's root) and the request carries another: refuse unless --replace. Site names and orgs are
   public, so anyone can make a request for them; a replaced request zip in a merged pull request must not
   turn into a certificate for someone else's key without the operator confirming the new key with the site.
4. Under the state lock: the state's root CA must be the one the server trusts (rootCA.pem of the rendered
   startup ConfigMap). Then, by the record in `StateDocument.enrolled[site]`:
   - same request digest, same root, same client profile (kit.client_profile: the server's name and fl port,
     which `nvflare package` puts into the site's fed_client.json from the signed zip), signed zip present
     with the recorded digest: unchanged, nothing written;
   - the same, but the signed zip missing or different: the recorded signed zip is restored byte for byte;
   - otherwise (first approval, a new request, a new root CA, server name or fl port): NVFlare's own `nvflare
     cert approve` signs it, with a CA folder materialized from the state in a private temporary folder
     (rootCA.pem, rootCA.key, ca.json, as `nvflare cert init` lays it out) that is deleted afterwards; the result is re-checked
     (inspect_signed_zip, check_signed against the server's root, check_pair against the request); the record
     is saved, then the request (when not in the repo yet) and the signed zip are written atomically.

NVFlare's approval is not deterministic (random serial, timestamps, a randomized PSS signature, zip times):
the record (which keeps the signed zip itself) is what makes a repeated approval byte-identical.
The record never holds a key: the site keeps its own.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from fedgen._crashpoint import pause as _crash_pause  # test hook: inert unless FEDGEN_TEST_PAUSE_AT is set
from fedgen.enroll.files import inside, write_atomic
from fedgen.enroll.fingerprints import certificate_key_sha256, fingerprint, key_fingerprint, sha256_hex
from fedgen.enroll.kit import PROVISION_VERSION, client_profile, profile_yaml
from fedgen.enroll.layout import request_path, signed_path
from fedgen.enroll.policy import check_pair, check_request, check_signed
from fedgen.enroll.request_zip import RequestInfo, inspect_request_zip
from fedgen.enroll.rootca import ROOT_KEY, configmap_path, from_document, from_repo
from fedgen.enroll.signed_zip import SignedInfo, inspect_signed_zip
from fedgen.enroll.zips import MAX_ZIP_BYTES
from fedgen.errors import ExternalError, InputError
from fedgen.scratch import private_dir
from fedgen.spec import Federation, load_federation
from fedgen.spec.model import Site
from fedgen.state.document import StateDocument
from fedgen.state.store import Backup

# NVFlare's centralized provisioning issues leaves for 360 days; enrolled sites get the same (capped by the root).
VALID_DAYS = 360
APPROVE_TIMEOUT = 120
# nvflare's CLI exits 4 for invalid input.
_NVFLARE_INVALID = 4


@dataclass(frozen=True)
class ApproveResult:
    action: str  # approved | re-approved | restored | unchanged
    federation: str
    site: str
    request_path: str  # repo-relative
    signed_path: str  # repo-relative
    signed: SignedInfo
    written: tuple[str, ...]  # repo-relative paths written (empty when unchanged)
    key_fingerprint: str  # SHA256:AA:BB:... of the request's public key, for the site to confirm
    previous_serial: str | None = None  # re-approved: the certificate that stays valid until it expires
    replaced_key: str | None = None  # --replace: the fingerprint of the key signed before, now replaced
    backup: Backup | None = None  # --replace that replaced a key: the copy of the state made before signing
    previous_root: str | None = None  # re-approved: the root CA fingerprint the previous certificate chains to
    previous_not_after: datetime | None = None  # re-approved: when the previous certificate expires
    previous_profile: tuple[str, int] | None = None  # re-approved: the client profile the previous signed zip carried


def _read_input(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if st.st_size > MAX_ZIP_BYTES:
        raise InputError(f"{path}: {st.st_size} bytes, more than the {MAX_ZIP_BYTES} a request zip may have")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None


def _read_optional(path: Path) -> bytes | None:
    if path.is_symlink():
        raise InputError(f"{path}: is a symbolic link; enrollment files must be plain files")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ExternalError(f"{path}: {exc.strerror}") from None


def _record(info: RequestInfo, signed: SignedInfo, data: bytes) -> dict[str, str]:
    """What the state keeps per enrolled site: certificate, digests, serial, root; and the signed zip itself
    (not secret) so a lost or edited copy in the repo can be restored byte for byte. Never a key."""
    return {
        "certificate": signed.certificate_pem.decode(),
        "not_after": signed.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "request_id": info.request_id,
        "request_sha256": info.sha256,
        "rootca_fingerprint": signed.rootca_fingerprint,
        "serial": signed.serial,
        "signed_sha256": sha256_hex(data),
        "signed_zip": base64.b64encode(data).decode(),
    }


def _ca_json(fed: Federation, root_pem: bytes) -> bytes:
    """ca.json as `nvflare cert init` writes it (nvflare/tool/cert/cert_commands.py, handle_cert_init)."""
    root = x509.load_pem_x509_certificate(root_pem)
    meta = {
        "project": fed.name,
        "created_at": root.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provision_version": PROVISION_VERSION,
        "rootCA_fingerprint": fingerprint(root),
    }
    return (json.dumps(meta, indent=2) + "\n").encode()


def _write_private(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-n:]) or "no output"


def sign_with_nvflare(fed: Federation, request: bytes, site: str, root_pem: bytes, root_key_pem: bytes, *, valid_days: int = VALID_DAYS) -> bytes:
    """Run `nvflare cert approve` on `request` with a CA folder materialized from the state; the signed zip.

    Everything lives in one private temporary folder (fedgen.scratch: 0700, the key 0600) removed before
    returning, on success, failure, SIGINT or SIGTERM (and swept by the next run after a SIGKILL). NVFlare
    also writes its approval audit record under ~/.nvflare/cert_approves/ (paths in it name this removed
    folder; it holds no key).
    """
    with private_dir("approve") as scratch:
        ca = scratch / "ca"
        ca.mkdir(mode=0o700)
        _write_private(ca / "rootCA.pem", root_pem, 0o644)
        _write_private(ca / "rootCA.key", root_key_pem, 0o600)
        _write_private(ca / "ca.json", _ca_json(fed, root_pem), 0o600)
        profile = scratch / "project_profile.yaml"
        _write_private(profile, profile_yaml(fed, "the spec"), 0o600)
        req = scratch / f"{site}.request.zip"
        _write_private(req, request, 0o600)
        _crash_pause("approve")  # test hook: the root CA key is on disk here
        out = scratch / "out" / f"{site}.signed.zip"
        cmd = [
            sys.executable,
            "-m",
            "nvflare.cli",
            "cert",
            "approve",
            str(req),
            "--ca-dir",
            str(ca),
            "--profile",
            str(profile),
            "--out",
            str(out),
            "--valid-days",
            str(valid_days),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=APPROVE_TIMEOUT, cwd=scratch, check=False)  # noqa: S603
        except subprocess.TimeoutExpired:
            raise ExternalError(f"nvflare cert approve did not finish within {APPROVE_TIMEOUT} s") from None
        except OSError as exc:
            raise ExternalError(f"nvflare cert approve could not start ({exc.strerror})") from None
        if proc.returncode != 0 or not out.is_file():
            detail = _last_lines(proc.stderr + "\n" + proc.stdout)
            if proc.returncode == _NVFLARE_INVALID:
                raise InputError(f"nvflare cert approve refused the request: {detail}")
            raise ExternalError(f"nvflare cert approve failed (exit {proc.returncode}): {detail}")
        return out.read_bytes()


@dataclass(frozen=True)
class SignedKey:
    """A public key a certificate for the site was already issued for, and where that is known from."""

    sha256: str  # of the SubjectPublicKeyInfo, hex
    source: str


def signed_key(
    fed: Federation, site: Site, record: dict[str, str] | None, signed_zip: bytes | None, server_root: bytes, *, signed_rel: str, state: str
) -> SignedKey | None:
    """The key already signed for `site`: the state's record when there is one (what this operator signed,
    under any root), else the committed signed zip when it is a valid approval for this site under the root the
    server trusts (anything else in that file proves nothing: a pull request can put any bytes there)."""
    if record is not None and record.get("certificate"):
        try:
            digest = certificate_key_sha256(record["certificate"].encode())
        except ValueError:
            raise ExternalError(f"state {state}: the recorded certificate of {site.name} does not parse") from None
        return SignedKey(digest, f"certificate {record.get('serial', '?')} in state {state}")
    if signed_zip is None:
        return None
    try:
        info = inspect_signed_zip(signed_zip, what=signed_rel)
        check_signed(fed, info, server_root, what=signed_rel)
    except InputError:
        return None
    if info.name != site.name:
        return None
    return SignedKey(info.public_key_sha256, f"certificate {info.serial} in {signed_rel}")


def _check_key(info: RequestInfo, previous: SignedKey | None, site: str, *, replace_key: bool, what: str) -> None:
    if previous is None or previous.sha256 == info.public_key_sha256 or replace_key:
        return
    raise InputError(
        f"{what}: the request's public key {key_fingerprint(info.public_key_sha256)} is not the key already signed for "
        f"{site} ({key_fingerprint(previous.sha256)}, {previous.source}); anyone can request a certificate for a "
        f"public site name and org: ask {site} over a second channel (phone, video call) for the fingerprint of the key "
        "it made, and only when it is this one approve again with --replace"
    )


def normalize_key_fingerprint(value: str) -> str:
    """SHA256:AA:BB:... from that form or plain hex (any case, with or without colons); InputError otherwise."""
    text = value.strip()
    if text[:7].upper() == "SHA256:":
        text = text[7:]
    digest = text.replace(":", "").lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InputError(f"--key-fingerprint {value!r} is not a SHA-256 fingerprint (SHA256:AA:BB:..., 32 bytes)")
    return key_fingerprint(digest)


def recorded_signed_zip(record: dict[str, str], site: str) -> SignedInfo:
    """The signed zip an enrollment record keeps (what the site packaged its kit from), checked again."""
    return inspect_signed_zip(base64.b64decode(record["signed_zip"]), what=f"recorded signed zip of {site}")


def _current(record: dict[str, str] | None, info: RequestInfo, root_fp: str, fed: Federation, site: str) -> bool:
    """The record answers this request under this root with the spec's client profile: nothing to sign."""
    return (
        record is not None
        and record.get("request_sha256") == info.sha256
        and record.get("rootca_fingerprint") == root_fp
        and recorded_signed_zip(record, site).client_profile == client_profile(fed)
    )


def _unchanged(
    record: dict[str, str] | None, info: RequestInfo, root_fp: str, fed: Federation, site: str, committed: bytes | None, current: bytes | None
) -> bool:
    return (
        record is not None
        and _current(record, info, root_fp, fed, site)
        and committed is not None
        and current is not None
        and sha256_hex(current) == record.get("signed_sha256")
    )


def approve(
    *, spec: Path, request_zip: Path, repo: Path, state: str | None = None, replace_key: bool = False, expected_key: str | None = None
) -> ApproveResult:
    """Verify, sign (or find it unchanged), record and write; see the module docstring.

    replace_key: sign a request whose key differs from the one signed before (--replace).
    expected_key: the fingerprint the site sent over a second channel (--key-fingerprint); refused when the
    request's key has another.
    """
    from fedgen.state import federation_store

    repo = repo.resolve()
    if not repo.is_dir():
        raise InputError(f"{repo}: --repo is not a folder")
    fed = load_federation(spec)
    data = _read_input(request_zip)
    what = str(request_zip)
    info = inspect_request_zip(data, what=what)
    site = check_request(fed, info, what=what)
    key_fp = key_fingerprint(info.public_key_sha256)
    if expected_key is not None and normalize_key_fingerprint(expected_key) != key_fp:
        raise InputError(
            f"{what}: the request's public key is {key_fp}, not {normalize_key_fingerprint(expected_key)} as given with "
            f"--key-fingerprint: this is not the request {site.name} made; do not approve it"
        )
    req_rel, signed_rel = request_path(fed.name, site.name), signed_path(fed.name, site.name)
    req_abs, signed_abs = repo / req_rel, repo / signed_rel
    for path in (req_abs, signed_abs):
        existing = path.parent
        while not existing.exists() and existing != repo:
            existing = existing.parent
        if not inside(repo, existing):
            raise InputError(f"{existing}: lies outside the repository {repo} (a symbolic link?)")
    committed = _read_optional(req_abs)
    if committed is not None and committed != data:
        raise InputError(
            f"{req_rel} holds another request of {site.name} than {request_zip} (public key {key_fp}): approve the committed "
            "(reviewed) one, or replace it through a pull request first"
        )
    rendered = from_repo(repo, fed)
    if rendered is None:
        raise InputError(
            f"{configmap_path(fed)} is not in {repo}: render the federation (fedgen render) and commit first, so the server trusts the root that signs"
        )
    server_root, rendered_rel = rendered

    store = federation_store(fed, state, repo)

    def load() -> tuple[StateDocument, bytes, str]:
        document = store.load()
        document.require_project(fed.name, store.description)
        root_pem = from_document(document, f"state {store.description}")
        root_key = document.nvflare_cert.get(ROOT_KEY)
        if root_pem is None or not root_key:
            raise InputError(f"state {store.description} holds no root CA: run `fedgen render {shlex.quote(str(spec))}` first (with the same --state)")
        root_fp = fingerprint(root_pem)
        if root_fp != fingerprint(server_root):
            raise InputError(
                f"the state's root CA ({root_fp}) is not the one the server trusts in {rendered_rel} ({fingerprint(server_root)}): "
                "render with this state and commit, or pass the right --state"
            )
        return document, root_pem, root_fp

    # Unchanged is decided without the lock (a save replaces the document atomically), so it writes nothing,
    # not even the lock file's holder record.
    document, root_pem, root_fp = load()
    current = _read_optional(signed_abs)
    if _unchanged(document.enrolled.get(site.name), info, root_fp, fed, site.name, committed, current):
        signed = recorded_signed_zip(document.enrolled[site.name], site.name)
        return ApproveResult("unchanged", fed.name, site.name, req_rel, signed_rel, signed, (), key_fp)

    def previous_key(document: StateDocument, current: bytes | None) -> SignedKey | None:
        return signed_key(fed, site, document.enrolled.get(site.name), current, server_root, signed_rel=signed_rel, state=store.description)

    # Refused before the lock, so a refusal writes nothing (not even the lock file); checked again under it.
    previous = previous_key(document, current)
    _check_key(info, previous, site.name, replace_key=replace_key, what=what)

    with store.lock():
        document, root_pem, root_fp = load()
        root_key = document.nvflare_cert[ROOT_KEY]
        record = document.enrolled.get(site.name)
        current = _read_optional(signed_abs)
        if record is not None and _current(record, info, root_fp, fed, site.name):
            kept = base64.b64decode(record["signed_zip"])
            if sha256_hex(kept) != record["signed_sha256"]:
                raise ExternalError(f"state {store.description}: the recorded signed zip of {site.name} does not match its digest")
            signed = recorded_signed_zip(record, site.name)
            written: list[str] = []
            if committed is None:
                write_atomic(req_abs, data)
                written.append(req_rel)
            if current is None or sha256_hex(current) != record["signed_sha256"]:
                write_atomic(signed_abs, kept)
                written.append(signed_rel)
            action = "restored" if written else "unchanged"
            return ApproveResult(action, fed.name, site.name, req_rel, signed_rel, signed, tuple(written), key_fp)

        previous = previous_key(document, current)
        _check_key(info, previous, site.name, replace_key=replace_key, what=what)
        replacing = previous is not None and previous.sha256 != info.public_key_sha256
        backup = store.backup() if replacing else None  # before the record of the old key is replaced
        signed_bytes = sign_with_nvflare(fed, data, site.name, root_pem, root_key.encode() if isinstance(root_key, str) else root_key)
        signed = inspect_signed_zip(signed_bytes, what="nvflare cert approve's signed zip")
        check_signed(fed, signed, server_root, what="nvflare cert approve's signed zip")
        check_pair(info, signed, what="nvflare cert approve's signed zip")
        new_doc = replace(document, enrolled={**document.enrolled, site.name: _record(info, signed, signed_bytes)})
        store.save(new_doc)
        written = []
        if committed is None:
            write_atomic(req_abs, data)
            written.append(req_rel)
        write_atomic(signed_abs, signed_bytes)
        written.append(signed_rel)
    action = "re-approved" if record is not None else "approved"
    previous_serial = record.get("serial") if record is not None else None
    replaced = key_fingerprint(previous.sha256) if previous is not None and replacing else None
    previous_root = record.get("rootca_fingerprint") if record is not None else None
    previous_not_after = _recorded_time(record.get("not_after")) if record is not None else None
    previous_profile = recorded_signed_zip(record, site.name).client_profile if record is not None else None
    return ApproveResult(
        action,
        fed.name,
        site.name,
        req_rel,
        signed_rel,
        signed,
        tuple(written),
        key_fp,
        previous_serial,
        replaced,
        backup,
        previous_root,
        previous_not_after,
        previous_profile,
    )


def _recorded_time(text: str | None) -> datetime | None:
    """A record's not_after (UTC, `%Y-%m-%dT%H:%M:%SZ`); None when missing or malformed."""
    try:
        return datetime.strptime(text or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
