"""Provision a federation with NVFlare's library, keeping NVFlare's certificate state in the state document.

How a call works: a fresh private temporary provisioning root (mkdtemp, mode 0700) is seeded with
`<root>/<project>/state/cert.json` built from `StateDocument.nvflare_cert`; NVFlare's Provisioner runs
(WorkspaceBuilder, StaticFileBuilder(config_folder="config", scheme="grpc"), CertBuilder, SignatureBuilder);
the kits asked for and the updated cert.json are read back into memory; the temporary root is deleted. No key
or certificate is written anywhere else. NVFlare reuses every certificate found in cert.json, so the same
document always gives byte-identical kits. An empty document means a new root CA (and every certificate new).

Re-issue rules. Per participant the document records the inputs its certificate was issued for
(`StateDocument.participants`): `type` and `org` for everyone, `role` for admins, `host_names` for the server
(default host first). A participant gets a new key and certificate when it has no cert.json entry, when it has
no record, or when its record differs from the spec. NVFlare alone gets these cases wrong, hence the records:

- server host names (default_host / host_names, the certificate's SAN) change: NVFlare silently keeps the old
  server.crt. fedgen drops the server's entry before seeding, so server.crt (only) is re-issued.
- an admin's role changes: NVFlare fails ("previous role is ..."). fedgen drops that admin's entry, so that
  admin's certificate (only) is re-issued with the new role.
- a participant's org changes (the certificate's O): NVFlare keeps the old certificate; fedgen re-issues it.
- a participant is added: only its certificate is issued; every other cert.json entry stays byte for byte.
- a participant is removed: its cert.json entry and record are dropped from the returned document, so no
  later render can hand out its kit again. That is all fedgen can do: NVFlare has no revocation list, so the
  removed participant's existing kit stays valid (chains to the root CA) until its certificate expires or the
  root CA is replaced.

Performance: participants that already have a valid certificate and whose kit is not asked for are left out
of the NVFlare project and their cert.json entries are carried over unchanged. This matters even for
unchanged participants: NVFlare loads every stored private key with cryptography's full RSA key check, which
costs about as much as generating a key (~45 ms per participant), so re-rendering all kits of a large
federation is slow whether or not anything changed. The server is always in the project
(NVFlare requires it); its kit does not depend on which clients are listed (tested).

NVFlare reports most provisioning failures in the returned context instead of raising; both reported and
raised failures become `ExternalError("nvflare provisioning failed: <first reason>")` (exit code 3).
NVFlare's console output is captured and discarded so fedgen's own output stays clean.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fedgen.errors import ExternalError, InputError
from fedgen.spec.model import Federation
from fedgen.state.document import StateDocument

# Keys of NVFlare's cert.json that are not participants (CtxKey.ROOT_CERT / ROOT_PRI_KEY in nvflare.lighter).
_ROOT_CERT = "root_cert"
_ROOT_PRI_KEY = "root_pri_key"
_ENTRY_CERT = "cert"
_ENTRY_PRI_KEY = "pri_key"
_CERT_JSON = "cert.json"
# NVFlare truncates a longer server name (the certificate CN), which would rename the server's kit.
_MAX_CN_LENGTH = 64

_FAILED = "nvflare provisioning failed"
_BUILDER_ERROR = re.compile(
    r"^Exception (?P<reason>.*) raised during provision\.\s+Incomplete prod_n folder removed\.$", re.DOTALL
)


@dataclass(frozen=True)
class KitFile:
    """One file of a startup kit."""

    data: bytes
    mode: int  # 0o644, 0o755 (scripts) or 0o600 (private keys)


@dataclass(frozen=True)
class ProvisionResult:
    """What a provisioning run produced."""

    # participant name -> {"startup/fed_server.json": KitFile, "local/...": ..., "readme.txt": ...},
    # only for the participants asked for
    kits: Mapping[str, Mapping[str, KitFile]]
    # the new state (a new object; the input document is not mutated)
    document: StateDocument
    # sorted names whose certificate was (re)issued by this call
    issued: tuple[str, ...]


def provision(
    federation: Federation, document: StateDocument, *, kits_for: Iterable[str] | None = None
) -> ProvisionResult:
    """Issue the certificates the federation needs; render the kits of `kits_for` (None: every participant).

    Every participant of the spec has a certificate in the returned document, whether or not its kit was
    asked for. Raises InputError for unusable input (unknown names in kits_for, a state document of another
    project or without the root CA key) and ExternalError when NVFlare fails.
    """
    records = _records(federation)
    names = list(records)  # server, sites, admins: spec order
    server_name = federation.server.name
    wanted = _wanted(names, kits_for)
    _check_names(federation)
    if document.project is not None and document.project != federation.name and document.nvflare_cert:
        raise InputError(
            f"the state belongs to NVFlare project {document.project!r}, not {federation.name!r}"
        )

    old_cert = document.nvflare_cert
    has_ca = bool(old_cert.get(_ROOT_CERT))
    if has_ca and not old_cert.get(_ROOT_PRI_KEY):
        raise InputError("the state holds a root CA certificate but not its private key")

    reusable = {
        name
        for name in names
        if has_ca and _is_entry(old_cert.get(name)) and document.participants.get(name) == records[name]
    }
    in_project = [n for n in names if n == server_name or n in wanted or n not in reusable]
    seed: dict[str, Any] = {}
    if has_ca:
        seed[_ROOT_CERT] = old_cert[_ROOT_CERT]
        seed[_ROOT_PRI_KEY] = old_cert[_ROOT_PRI_KEY]
        seed.update({n: old_cert[n] for n in in_project if n in reusable})
    issued = tuple(sorted(n for n in in_project if n not in reusable))

    new_cert, kits = _run_nvflare(federation, in_project, seed, [n for n in names if n in wanted])

    for name in in_project:
        if not _is_entry(new_cert.get(name)):
            raise ExternalError(f"{_FAILED}: no certificate for {name} in cert.json")
        if name in reusable and new_cert[name] != old_cert[name]:
            raise ExternalError(f"{_FAILED}: the certificate of {name} changed unexpectedly")
    if not new_cert.get(_ROOT_CERT) or not new_cert.get(_ROOT_PRI_KEY):
        raise ExternalError(f"{_FAILED}: no root CA in cert.json")

    merged: dict[str, Any] = {_ROOT_CERT: new_cert[_ROOT_CERT], _ROOT_PRI_KEY: new_cert[_ROOT_PRI_KEY]}
    for name in names:
        # Entries of participants left out of the NVFlare project come from the input, unchanged.
        merged[name] = copy.deepcopy(new_cert[name] if name in in_project else old_cert[name])

    new_document = StateDocument(
        project=federation.name,
        nvflare_cert=merged,
        participants=copy.deepcopy(records),
        sealing=copy.deepcopy(document.sealing),
        sealed=copy.deepcopy(document.sealed),
        enrolled=copy.deepcopy(document.enrolled),
    )
    return ProvisionResult(kits=MappingProxyType(kits), document=new_document, issued=issued)


def _records(federation: Federation) -> dict[str, dict[str, Any]]:
    """Per participant, the inputs its certificate depends on (what StateDocument.participants records)."""
    server = federation.server
    entries: list[tuple[str, dict[str, Any]]] = [
        (server.name, {"type": "server", "org": server.org, "host_names": list(server.host_names)})
    ]
    entries += [(s.name, {"type": "client", "org": s.org}) for s in federation.sites]
    entries += [(a.name, {"type": "admin", "org": a.org, "role": a.role}) for a in federation.admins]
    records = dict(entries)
    if len(records) != len(entries):
        counts = Counter(name for name, _ in entries)
        dupes = sorted(name for name, count in counts.items() if count > 1)
        raise InputError(f"participant names must be unique: {', '.join(dupes)}")
    return records


def _wanted(names: list[str], kits_for: Iterable[str] | None) -> set[str]:
    if kits_for is None:
        return set(names)
    if isinstance(kits_for, str):
        raise TypeError("kits_for must be an iterable of names, not a string")
    wanted = set(kits_for)
    unknown = sorted(wanted.difference(names))
    if unknown:
        raise InputError(f"no participant named {', '.join(unknown)} in the federation")
    return wanted


def _check_names(federation: Federation) -> None:
    """Guards for what NVFlare itself does not check but would break this module."""
    project = federation.name
    if not project or project in (".", "..") or "/" in project or "\0" in project:
        # NVFlare uses the project name as a folder name without checking it.
        raise InputError(f"the NVFlare project name {project!r} cannot be a folder name")
    if len(federation.server.name) > _MAX_CN_LENGTH:
        raise InputError(
            f"server name {federation.server.name!r} is longer than {_MAX_CN_LENGTH} characters "
            "(NVFlare would truncate it)"
        )
    for name in federation.participant_names:
        if name in (_ROOT_CERT, _ROOT_PRI_KEY):
            # NVFlare keeps participants and the root CA in the same cert.json object.
            raise InputError(f"participant name {name!r} is reserved by NVFlare's certificate state")


def _is_entry(value: object) -> bool:
    return isinstance(value, dict) and bool(value.get(_ENTRY_CERT)) and bool(value.get(_ENTRY_PRI_KEY))


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


class _SilentLogger:
    """The logger NVFlare's ProvisionContext accepts: drops messages (errors are also kept in the context)."""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        pass


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Capture and discard what NVFlare prints (stdout, stderr, tracebacks) or logs below CRITICAL."""
    nvflare_logger = logging.getLogger("nvflare")
    level = nvflare_logger.level
    nvflare_logger.setLevel(logging.CRITICAL + 1)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        nvflare_logger.setLevel(level)


def _run_nvflare(
    federation: Federation, in_project: list[str], seed: dict[str, Any], kit_names: list[str]
) -> tuple[dict[str, Any], dict[str, Mapping[str, KitFile]]]:
    """Run NVFlare's Provisioner in a private temporary root; return the new cert.json and the kits."""
    root = tempfile.mkdtemp(prefix="fedgen-provision-")  # mode 0700
    try:
        state_dir = os.path.join(root, federation.name, "state")
        os.makedirs(state_dir, mode=0o700)
        if seed:
            _write_private(os.path.join(state_dir, _CERT_JSON), json.dumps(seed).encode())

        with _quiet():
            try:
                ctx = _provision_in(root, federation, in_project)
            except Exception as exc:  # NVFlare raises for some errors (names, missing server, ...)
                raise ExternalError(f"{_FAILED}: {_one_line(str(exc) or type(exc).__name__)}") from exc

        from nvflare.lighter.constants import CtxKey

        location = ctx.get_result_location()
        errors = ctx.get_errors()
        if errors or location is None or ctx.get(CtxKey.BUILD_ERROR):
            raise ExternalError(f"{_FAILED}: {_reason(errors)}")

        try:
            with open(os.path.join(state_dir, _CERT_JSON), "rb") as f:
                new_cert = json.loads(f.read())
            kits = {name: _read_kit(os.path.join(location, name)) for name in kit_names}
        except (OSError, ValueError) as exc:
            raise ExternalError(f"{_FAILED}: cannot read the result: {_one_line(str(exc))}") from exc
        if not isinstance(new_cert, dict):
            raise ExternalError(f"{_FAILED}: cert.json is not a JSON object")
        return new_cert, kits
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _provision_in(root: str, federation: Federation, in_project: list[str]) -> Any:
    """Build the NVFlare project (only the participants in `in_project`) and provision it under `root`."""
    from nvflare.lighter.constants import ParticipantType, PropKey
    from nvflare.lighter.entity import Participant, Project
    from nvflare.lighter.impl.cert import CertBuilder
    from nvflare.lighter.impl.signature import SignatureBuilder
    from nvflare.lighter.impl.static_file import StaticFileBuilder
    from nvflare.lighter.impl.workspace import WorkspaceBuilder
    from nvflare.lighter.provisioner import Provisioner

    include = set(in_project)
    server = federation.server
    participants = [
        Participant(
            type=ParticipantType.SERVER,
            name=server.name,
            org=server.org,
            props={
                PropKey.FED_LEARN_PORT: server.fl_port,
                PropKey.ADMIN_PORT: server.admin_port,
                PropKey.DEFAULT_HOST: server.default_host,
                PropKey.HOST_NAMES: list(server.host_names),
            },
        )
    ]
    participants += [
        Participant(type=ParticipantType.CLIENT, name=s.name, org=s.org, props={})
        for s in federation.sites
        if s.name in include
    ]
    participants += [
        Participant(type=ParticipantType.ADMIN, name=a.name, org=a.org, props={PropKey.ROLE: a.role})
        for a in federation.admins
        if a.name in include
    ]
    project = Project(name=federation.name, description="", participants=participants)
    builders = [
        WorkspaceBuilder(),
        StaticFileBuilder(config_folder="config", scheme="grpc"),
        CertBuilder(),
        SignatureBuilder(),
    ]
    return Provisioner(root, builders).provision(project, logger=_SilentLogger())


def _reason(errors: list[str]) -> str:
    if not errors:
        return "no result produced"
    match = _BUILDER_ERROR.match(errors[0].strip())
    return _one_line(match.group("reason") if match else errors[0])


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _kit_mode(rel_path: str, st_mode: int) -> int:
    if rel_path.endswith(".key"):
        return 0o600
    if st_mode & 0o111:
        return 0o755
    return 0o644


def _read_kit(kit_dir: str) -> Mapping[str, KitFile]:
    files: dict[str, KitFile] = {}
    for dirpath, dirnames, filenames in os.walk(kit_dir):
        dirnames.sort()
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            st = os.lstat(full)
            rel = os.path.relpath(full, kit_dir).replace(os.sep, "/")
            if not stat.S_ISREG(st.st_mode):
                raise ExternalError(f"{_FAILED}: unexpected non-regular file {rel} in a kit")
            with open(full, "rb") as f:
                files[rel] = KitFile(data=f.read(), mode=_kit_mode(rel, st.st_mode))
    if not files:
        raise ExternalError(f"{_FAILED}: empty kit {os.path.basename(kit_dir)}")
    return MappingProxyType(dict(sorted(files.items())))
