"""Provision a federation with NVFlare's library, keeping NVFlare's certificate state in the state document.

How a call works: a fresh private temporary provisioning root (fedgen.scratch, mode 0700) is seeded with
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

Parallel issuance. A new certificate costs one RSA-2048 key generation inside NVFlare (~45 ms on one core, more
on slow machines), so a cold render of a large federation is almost all key generation. When enough
certificates are new they are issued by NVFlare in worker processes (`python -m fedgen.provision.worker`,
see `_run_workers` for why not multiprocessing): first, in this process, NVFlare creates the root CA (when the
state has none) and issues the server's certificate (when needed), because every NVFlare project holds the
server and it must be issued once; then the other new participants are split into contiguous groups, one per
worker, and each worker has NVFlare issue its group (WorkspaceBuilder and CertBuilder only: a certificate
depends on nothing else) in its own private temporary root seeded with the root CA and the server entry;
their cert.json entries are merged. Finally the kits asked for are built by NVFlare exactly as in the serial
case, from a seed in which every participant of the project already has its entry, so kits are a function
of the resulting state alone, byte for byte, however the certificates were issued (tested). Workers: the
`workers=` argument, else FEDGEN_PROVISION_WORKERS, else the CPUs this process may use, capped at MAX_WORKERS
and at one worker per MIN_PER_WORKER new certificates; with fewer than 2, everything runs in this process.

NVFlare reports most provisioning failures in the returned context instead of raising; both reported and
raised failures become `ExternalError("nvflare provisioning failed: <first reason>")` (exit code 3).
NVFlare's console output is captured and discarded so fedgen's own output stays clean.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fedgen import scratch
from fedgen._crashpoint import pause as _crash_pause  # test hook: inert unless FEDGEN_TEST_PAUSE_AT is set
from fedgen.errors import ExternalError, InputError
from fedgen.provision.kitcache import cached_kit, kit_key, kit_record
from fedgen.state.document import StateDocument

if TYPE_CHECKING:  # workers import this module: keep the spec loader (jsonschema, ruamel) out of them
    from fedgen.spec.model import Federation

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

# Parallel issuance (see the module docstring).
WORKERS_ENV = "FEDGEN_PROVISION_WORKERS"
MAX_WORKERS = 16
# A worker process costs an interpreter start and NVFlare's import (~1 s of CPU): only worth it for a batch.
MIN_PER_WORKER = 16


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


@dataclass(frozen=True)
class _Roster:
    """What NVFlare's Project is built from: picklable, so worker processes get it as it is."""

    project: str
    server: tuple[str, str, int, int, str, tuple[str, ...]]  # name, org, fl port, admin port, default host, hosts
    members: tuple[tuple[str, str, str, str | None], ...]  # (client | admin, name, org, role), spec order

    @classmethod
    def of(cls, federation: Federation) -> _Roster:
        s = federation.server
        members: list[tuple[str, str, str, str | None]] = [("client", x.name, x.org, None) for x in federation.sites]
        members += [("admin", a.name, a.org, a.role) for a in federation.admins]
        return cls(
            project=federation.name,
            server=(s.name, s.org, s.fl_port, s.admin_port, s.default_host, tuple(s.host_names)),
            members=tuple(members),
        )


def provision(
    federation: Federation,
    document: StateDocument,
    *,
    kits_for: Iterable[str] | None = None,
    workers: int | None = None,
) -> ProvisionResult:
    """Issue the certificates the federation needs; render the kits of `kits_for` (None: every participant).

    Every participant of the spec has a certificate in the returned document, whether or not its kit was
    asked for. `workers`: processes issuing new certificates (None: automatic, see the module docstring;
    1: all in this process). Raises InputError for unusable input (unknown names in kits_for, a state
    document of another project or without the root CA key, a bad worker count) and ExternalError when
    NVFlare fails.
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
    issued = tuple(sorted(n for n in in_project if n not in reusable))
    roster = _Roster.of(federation)

    # cert.json entries to seed NVFlare with: the root CA, then every participant that keeps its certificate.
    seed: dict[str, Any] = {}
    if has_ca:
        seed[_ROOT_CERT] = old_cert[_ROOT_CERT]
        seed[_ROOT_PRI_KEY] = old_cert[_ROOT_PRI_KEY]
        seed.update({n: old_cert[n] for n in names if n in reusable})

    if not issued:  # every certificate is reused: the kits may be in the state already (kitcache)
        cached = {n: cached_kit(document.kits.get(n), kit_key(roster, n, old_cert)) for n in names if n in wanted}
        if all(kit is not None for kit in cached.values()):
            kept = {k: old_cert[k] for k in (_ROOT_CERT, _ROOT_PRI_KEY)} | {n: copy.deepcopy(old_cert[n]) for n in names}
            recorded = {n: kit for n, kit in cached.items() if kit is not None}
            return ProvisionResult(kits=MappingProxyType(recorded), document=_new_document(federation, document, kept, records, roster, recorded), issued=())

    count = _worker_count(workers, len([n for n in issued if n != server_name]))
    if count > 1:
        # Issue every new certificate first (in parallel); then the kit run below issues nothing and needs
        # only the server and the kits asked for.
        seed = _issue_in_parallel(roster, seed, [n for n in in_project if n not in reusable], count)
        in_project = [n for n in names if n == server_name or n in wanted]
    given = {n: seed[n] for n in in_project if n in seed}
    project_seed = {k: seed[k] for k in (_ROOT_CERT, _ROOT_PRI_KEY) if k in seed} | given

    new_cert, kits = _run_nvflare(roster, in_project, project_seed, [n for n in names if n in wanted])

    for name in in_project:
        if not _is_entry(new_cert.get(name)):
            raise ExternalError(f"{_FAILED}: no certificate for {name} in cert.json")
        if name in given and new_cert[name] != given[name]:
            raise ExternalError(f"{_FAILED}: the certificate of {name} changed unexpectedly")
    if not new_cert.get(_ROOT_CERT) or not new_cert.get(_ROOT_PRI_KEY):
        raise ExternalError(f"{_FAILED}: no root CA in cert.json")
    if _ROOT_CERT in project_seed and new_cert[_ROOT_CERT] != project_seed[_ROOT_CERT]:
        raise ExternalError(f"{_FAILED}: the root CA changed unexpectedly")

    merged: dict[str, Any] = {_ROOT_CERT: new_cert[_ROOT_CERT], _ROOT_PRI_KEY: new_cert[_ROOT_PRI_KEY]}
    for name in names:
        # Entries of participants left out of the kit run come from the seed: the input's or just issued.
        merged[name] = copy.deepcopy(new_cert[name] if name in in_project else seed[name])

    return ProvisionResult(kits=MappingProxyType(kits), document=_new_document(federation, document, merged, records, roster, kits), issued=issued)


def _new_document(
    federation: Federation,
    document: StateDocument,
    merged: dict[str, Any],
    records: dict[str, dict[str, Any]],
    roster: _Roster,
    kits: Mapping[str, Mapping[str, KitFile]],
) -> StateDocument:
    """The state after provisioning: the merged cert.json, the issuance records, the kits just built (and
    nothing of kits not asked for), everything else of the input carried over."""
    # Every field provisioning does not own (sealing, enrollment, ...) is carried over as it was.
    carried = copy.deepcopy(dataclasses.replace(document, nvflare_cert={}, participants={}, kits={}))
    return dataclasses.replace(
        carried,
        project=federation.name,
        nvflare_cert=merged,
        participants=copy.deepcopy(records),
        kits={name: kit_record(kit_key(roster, name, merged), kit) for name, kit in sorted(kits.items())},
    )


def _worker_count(workers: int | None, new_certificates: int) -> int:
    """How many processes issue the new certificates (1: no worker processes)."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            if not env.isdigit() or int(env) < 1:
                raise InputError(f"{WORKERS_ENV}={env!r}: expected a whole number of worker processes, 1 or more")
            workers = int(env)
        else:
            workers = min(_available_cpus(), MAX_WORKERS, new_certificates // MIN_PER_WORKER)
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers={workers!r}: expected a whole number of worker processes, 1 or more")
    return max(1, min(workers, new_certificates))


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _split(items: Sequence[str], parts: int) -> list[list[str]]:
    """Contiguous groups of near-equal size, in order."""
    size, extra = divmod(len(items), parts)
    groups, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return [g for g in groups if g]


def _issue_in_parallel(roster: _Roster, seed: dict[str, Any], to_issue: list[str], workers: int) -> dict[str, Any]:
    """Issue a certificate for every name in to_issue; return the seed with the root CA and those entries."""
    seed = dict(seed)
    server = roster.server[0]
    if _ROOT_CERT not in seed or server in to_issue:
        # The root CA and the server first, here: every NVFlare project holds the server, so each worker
        # is seeded with its entry and none issues it again.
        base = {k: seed[k] for k in (_ROOT_CERT, _ROOT_PRI_KEY) if k in seed}
        new_cert, _ = _run_nvflare(roster, [server], base, [], with_kits=False)
        _check_issued(new_cert, [server])
        if _ROOT_CERT in seed and new_cert[_ROOT_CERT] != seed[_ROOT_CERT]:
            raise ExternalError(f"{_FAILED}: the root CA changed unexpectedly")
        seed.update({k: new_cert[k] for k in (_ROOT_CERT, _ROOT_PRI_KEY, server)})
    base = {k: seed[k] for k in (_ROOT_CERT, _ROOT_PRI_KEY, server)}
    groups = _split([n for n in to_issue if n != server], workers)
    requests = [{"roster": _roster_json(roster), "group": group, "base": base} for group in groups]
    for group, entries in zip(groups, _run_workers(requests)):
        _check_issued({**base, **entries}, group)
        seed.update({name: entries[name] for name in group})
    return seed


def _roster_json(roster: _Roster) -> dict[str, Any]:
    return {"project": roster.project, "server": list(roster.server), "members": [list(m) for m in roster.members]}


def _roster_from_json(data: Mapping[str, Any]) -> _Roster:
    name, org, fl_port, admin_port, default_host, hosts = data["server"]
    return _Roster(
        project=str(data["project"]),
        server=(str(name), str(org), int(fl_port), int(admin_port), str(default_host), tuple(str(h) for h in hosts)),
        members=tuple((str(k), str(n), str(o), None if r is None else str(r)) for k, n, o, r in data["members"]),
    )


def _run_workers(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one worker process per request, all at once; return their results in order.

    Workers are `python -m fedgen.provision.worker` processes rather than multiprocessing children: 'spawn'
    and 'forkserver' re-run the caller's __main__ module in every child (a script calling fedgen without a
    main guard would run again, or fail), and 'fork' is unsafe in a process with threads. A request (which
    holds the root CA key) goes over the worker's stdin, never to disk; the stdin stays open while the worker
    runs, and its end tells the worker that this process is gone (it then removes its temporary root)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for request in requests:
            proc = spawn_worker()
            procs.append(proc)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            out = proc.stdout.read()
            code = proc.wait()
            try:
                reply = json.loads(out)
            except ValueError:
                raise ExternalError(f"{_FAILED}: a provisioning worker exited with status {code}") from None
            if not isinstance(reply, dict) or "error" in reply or not isinstance(reply.get("entries"), dict):
                reason = reply.get("error") if isinstance(reply, dict) else None
                raise ExternalError(str(reason or f"{_FAILED}: a provisioning worker gave no result"))
            results.append(reply["entries"])
        return results
    except OSError as exc:
        raise ExternalError(f"{_FAILED}: cannot run a provisioning worker ({exc})") from None
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()  # a worker still running sees the end of its input and stops
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()


def spawn_worker() -> subprocess.Popen[bytes]:
    """A `python -m fedgen.provision.worker` process (see that module for the protocol); raises OSError."""
    import fedgen

    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fedgen.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "fedgen.provision.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def preload_nvflare() -> None:
    """Import what provisioning uses, so a worker started early does it while its caller prepares the request."""
    import nvflare.lighter.impl.static_file  # noqa: F401
    import nvflare.lighter.provisioner  # noqa: F401


def static_request(federation: Federation) -> dict[str, Any]:
    """What static_kits needs for the server's and the site-cluster sites' kits: only those in the roster,
    since neither kit depends on the other participants (tested), so the request is a stable cache key."""
    _check_names(federation)
    sites = federation.cluster_sites
    members = tuple(("client", s.name, s.org, None) for s in sites)
    roster = _Roster(project=federation.name, server=_Roster.of(federation).server, members=members)
    return {"roster": _roster_json(roster), "names": [federation.server.name, *(s.name for s in sites)]}


def static_kits(request: Mapping[str, Any]) -> dict[str, dict[str, bytes]]:
    """NVFlare's kit files that need no key (StaticFileBuilder's alone: no CA, no certificate, no state)."""
    roster = _roster_from_json(request["roster"])
    names = [str(n) for n in request["names"]]
    _, kits = _run_nvflare(roster, names, {}, names, with_certs=False)
    return {name: {path: f.data for path, f in kit.items()} for name, kit in kits.items()}


def issue_group(request: Mapping[str, Any]) -> dict[str, Any]:
    """In a worker: NVFlare issues the certificates of request["group"]; returns their cert.json entries."""
    roster = _roster_from_json(request["roster"])
    group = [str(n) for n in request["group"]]
    base = dict(request["base"])
    server = roster.server[0]
    new_cert, _ = _run_nvflare(roster, [server, *group], base, [], with_kits=False)
    _check_issued(new_cert, group)
    if new_cert[_ROOT_CERT] != base[_ROOT_CERT] or new_cert[server] != base[server]:
        raise ExternalError(f"{_FAILED}: the root CA or the server certificate changed unexpectedly")
    return {name: new_cert[name] for name in group}


def _check_issued(new_cert: Mapping[str, Any], names: Iterable[str]) -> None:
    if not new_cert.get(_ROOT_CERT) or not new_cert.get(_ROOT_PRI_KEY):
        raise ExternalError(f"{_FAILED}: no root CA in cert.json")
    for name in names:
        if not _is_entry(new_cert.get(name)):
            raise ExternalError(f"{_FAILED}: no certificate for {name} in cert.json")


# The private provisioning root in use, so that a worker can remove it when its caller is gone.
current_root: str | None = None
# Held while a root is created and recorded, and by the worker's watcher while it removes it and exits: so
# no root can be created between the watcher's look at current_root and its exit.
root_lock = threading.Lock()


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
    roster: _Roster,
    in_project: list[str],
    seed: dict[str, Any],
    kit_names: list[str],
    *,
    with_kits: bool = True,
    with_certs: bool = True,
) -> tuple[dict[str, Any], dict[str, Mapping[str, KitFile]]]:
    """Run NVFlare's Provisioner in a private temporary root; return the new cert.json and the kits.

    with_kits=False runs only the builders certificates depend on (no kit files are built or read);
    with_certs=False only those that need no key (no cert.json: {} is returned for it)."""
    global current_root
    with root_lock:
        root = scratch.make_dir("provision")  # mode 0700; removed on SIGINT/SIGTERM too, swept after a SIGKILL
        current_root = root
    try:
        state_dir = os.path.join(root, roster.project, "state")
        os.makedirs(state_dir, mode=0o700)
        if seed:
            _write_private(os.path.join(state_dir, _CERT_JSON), json.dumps(seed).encode())

        with _quiet():
            try:
                ctx = _provision_in(root, roster, in_project, with_kits=with_kits, with_certs=with_certs)
            except Exception as exc:  # NVFlare raises for some errors (names, missing server, ...)
                raise ExternalError(f"{_FAILED}: {_one_line(str(exc) or type(exc).__name__)}") from exc
        _crash_pause("provision")  # test hook: every key of this run is on disk here

        from nvflare.lighter.constants import CtxKey

        location = ctx.get_result_location()
        errors = ctx.get_errors()
        if errors or location is None or ctx.get(CtxKey.BUILD_ERROR):
            raise ExternalError(f"{_FAILED}: {_reason(errors)}")

        try:
            new_cert: Any = {}
            if with_certs:
                with open(os.path.join(state_dir, _CERT_JSON), "rb") as f:
                    new_cert = json.loads(f.read())
            kits = {name: _read_kit(os.path.join(location, name)) for name in kit_names}
        except (OSError, ValueError) as exc:
            raise ExternalError(f"{_FAILED}: cannot read the result: {_one_line(str(exc))}") from exc
        if not isinstance(new_cert, dict):
            raise ExternalError(f"{_FAILED}: cert.json is not a JSON object")
        return new_cert, kits
    finally:
        scratch.remove(root)
        current_root = None


def _provision_in(root: str, roster: _Roster, in_project: list[str], *, with_kits: bool, with_certs: bool = True) -> Any:
    """Build the NVFlare project (only the participants in `in_project`) and provision it under `root`."""
    from nvflare.lighter.constants import ParticipantType, PropKey
    from nvflare.lighter.entity import Participant, Project
    from nvflare.lighter.impl.cert import CertBuilder
    from nvflare.lighter.impl.signature import SignatureBuilder
    from nvflare.lighter.impl.static_file import StaticFileBuilder
    from nvflare.lighter.impl.workspace import WorkspaceBuilder
    from nvflare.lighter.provisioner import Provisioner

    include = set(in_project)
    name, org, fl_port, admin_port, default_host, host_names = roster.server
    participants = [
        Participant(
            type=ParticipantType.SERVER,
            name=name,
            org=org,
            props={
                PropKey.FED_LEARN_PORT: fl_port,
                PropKey.ADMIN_PORT: admin_port,
                PropKey.DEFAULT_HOST: default_host,
                PropKey.HOST_NAMES: list(host_names),
            },
        )
    ]
    for kind, member, member_org, role in roster.members:
        if member not in include:
            continue
        if kind == "client":
            participants.append(Participant(type=ParticipantType.CLIENT, name=member, org=member_org, props={}))
        else:
            participants.append(
                Participant(type=ParticipantType.ADMIN, name=member, org=member_org, props={PropKey.ROLE: role})
            )
    project = Project(name=roster.project, description="", participants=participants)
    builders: list[Any] = [WorkspaceBuilder()]
    if with_kits:
        builders.append(StaticFileBuilder(config_folder="config", scheme="grpc"))
    if with_certs:
        builders.append(CertBuilder())
        if with_kits:
            builders.append(SignatureBuilder())
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
