"""NVFlare's provisioning library (nvflare.lighter), run in a private temporary root: the only module of
fedgen.provision that imports nvflare, and it does so lazily, inside functions.

How a run works: a fresh private temporary root (fedgen.scratch, mode 0700) is seeded with
`<root>/<project>/state/cert.json`; NVFlare's Provisioner runs (WorkspaceBuilder,
StaticFileBuilder(config_folder="config", scheme="grpc"), CertBuilder, SignatureBuilder); the kits asked for
and the updated cert.json are read back into memory; the temporary root is deleted. No key or certificate is
written anywhere else. NVFlare reuses every certificate found in cert.json, so the same seed always gives
byte-identical kits. An empty seed means a new root CA (and every certificate new).

NVFlare reports most provisioning failures in the returned context instead of raising; both reported and
raised failures become `ExternalError("nvflare provisioning failed: <first reason>")` (exit code 3).
NVFlare's console output is captured and discarded so fedgen's own output stays clean.

What is imported and read (see _load_lighter): nvflare.lighter and what it imports, without the package's
__init__ (the job API and the simulator, ~0.3 s of CPU that provisioning never uses; it runs after all, the
first time anything asks the package for a name it lacks); NVFlare's template files are parsed once per
process (PyYAML's pure-Python loader, ~20 ms a run): a worker making the static kits of 30 federations runs
NVFlare 30 times.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import stat
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from fedgen import scratch
from fedgen._crashpoint import pause as _crash_pause  # test hook: inert unless FEDGEN_TEST_PAUSE_AT is set
from fedgen.errors import ExternalError
from fedgen.provision.kit import Kit, KitFile
from fedgen.provision.roster import ROOT_CERT, ROOT_PRI_KEY, Roster, is_entry

FAILED = "nvflare provisioning failed"
_CERT_JSON = "cert.json"
_BUILDER_ERROR = re.compile(r"^Exception (?P<reason>.*) raised during provision\.\s+Incomplete prod_n folder removed\.$", re.DOTALL)


class RootWatch:
    """The private root a run is using, for a worker process whose watcher thread removes it when the caller
    is gone. `lock` is held while a root is made and recorded, and by the watcher while it removes the root and
    exits: so no root can be made between the watcher's look at `current` and its exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: str | None = None


STATIC_FILE_TEMPLATE = "master_template.yml"  # the template StaticFileBuilder loads (NVFlare's templates folder)


def preload() -> None:
    """Import what provisioning uses and parse StaticFileBuilder's template (kept, see _load_lighter), so a
    worker started early does both while its caller prepares the request (the first run was ~20 ms slower)."""
    _load_lighter()
    import nvflare.lighter.ctx as ctx
    import nvflare.lighter.impl.static_file  # noqa: F401
    import nvflare.lighter.provisioner  # noqa: F401

    ctx.load_yaml(os.path.join(os.path.dirname(ctx.prov.__file__), "templates", STATIC_FILE_TEMPLATE))


_lighter_lock = threading.RLock()  # re-entrant: completing the package imports modules that ask it for names


def _load_lighter() -> None:
    """Let `import nvflare.lighter...` import NVFlare's provisioning library alone (see the module's docstring),
    and have NVFlare parse each of its templates once. Once per process; nothing to do when nvflare is imported."""
    with _lighter_lock:
        if "nvflare" in sys.modules:
            return
        spec = importlib.util.find_spec("nvflare")
        if spec is None or spec.loader is None:
            return  # the import below fails as it would have
        loader = spec.loader
        package = importlib.util.module_from_spec(spec)
        completed = False

        def complete(name: str) -> Any:
            """A name the package's __init__ defines (nvflare.__version__, FedJob, ...): run it, once."""
            nonlocal completed
            with _lighter_lock:
                if not completed:
                    completed = True
                    loader.exec_module(package)
                    if name in package.__dict__:
                        return package.__dict__[name]
            raise AttributeError(f"module 'nvflare' has no attribute {name!r}")

        package.__getattr__ = complete  # type: ignore[method-assign]
        sys.modules["nvflare"] = package
        import nvflare.lighter.ctx as ctx

        templates = os.path.join(os.path.dirname(ctx.prov.__file__), "templates")
        parse = ctx.load_yaml
        parsed: dict[str, dict[str, Any]] = {}

        def load_yaml(file: Any) -> Any:
            if not isinstance(file, str) or os.path.dirname(file) != templates:
                return parse(file)
            if file not in parsed:
                parsed[file] = parse(file)
            return dict(parsed[file])  # a template maps section names to text: a shallow copy is a copy

        ctx.load_yaml = load_yaml


def run(
    roster: Roster,
    in_project: list[str],
    seed: dict[str, Any],
    kit_names: list[str],
    *,
    with_kits: bool = True,
    with_certs: bool = True,
    watch: RootWatch | None = None,
) -> tuple[dict[str, Any], dict[str, Kit]]:
    """Run NVFlare's Provisioner in a private temporary root; return the new cert.json and the kits.

    with_kits=False runs only the builders certificates depend on (no kit files are built or read);
    with_certs=False only those that need no key (no cert.json: {} is returned for it)."""
    with watch.lock if watch else contextlib.nullcontext():
        root = scratch.make_dir("provision")  # mode 0700; removed on SIGINT/SIGTERM too, swept after a SIGKILL
        if watch:
            watch.current = root
    try:
        state_dir = os.path.join(root, roster.project, "state")
        os.makedirs(state_dir, mode=0o700)
        if seed:
            _write_private(os.path.join(state_dir, _CERT_JSON), json.dumps(seed).encode())

        with _quiet():
            try:
                ctx = _provision_in(root, roster, in_project, with_kits=with_kits, with_certs=with_certs)
            except Exception as exc:  # NVFlare raises for some errors (names, missing server, ...)
                raise ExternalError(f"{FAILED}: {_one_line(str(exc) or type(exc).__name__)}") from exc
        _crash_pause("provision")  # test hook: every key of this run is on disk here

        from nvflare.lighter.constants import CtxKey

        location = ctx.get_result_location()
        errors = ctx.get_errors()
        if errors or location is None or ctx.get(CtxKey.BUILD_ERROR):
            raise ExternalError(f"{FAILED}: {_reason(errors)}")

        try:
            new_cert: Any = {}
            if with_certs:
                with open(os.path.join(state_dir, _CERT_JSON), "rb") as f:
                    new_cert = json.loads(f.read())
            kits = {name: _read_kit(os.path.join(location, name)) for name in kit_names}
        except (OSError, ValueError) as exc:
            raise ExternalError(f"{FAILED}: cannot read the result: {_one_line(str(exc))}") from exc
        if not isinstance(new_cert, dict):
            raise ExternalError(f"{FAILED}: cert.json is not a JSON object")
        return new_cert, kits
    finally:
        scratch.remove(root)
        if watch:
            watch.current = None


def issue_group(roster: Roster, group: list[str], base: Mapping[str, Any], watch: RootWatch | None = None) -> dict[str, Any]:
    """NVFlare issues the certificates of `group` (WorkspaceBuilder and CertBuilder only: a certificate depends
    on nothing else), seeded with `base` (the root CA and the server's entry, which must not change); returns
    the group's cert.json entries."""
    server = roster.server_name
    new_cert, _ = run(roster, [server, *group], dict(base), [], with_kits=False, watch=watch)
    check_issued(new_cert, group)
    if new_cert[ROOT_CERT] != base[ROOT_CERT] or new_cert[server] != base[server]:
        raise ExternalError(f"{FAILED}: the root CA or the server certificate changed unexpectedly")
    return {name: new_cert[name] for name in group}


def static_kits(request: Mapping[str, Any], watch: RootWatch | None = None) -> dict[str, dict[str, bytes]]:
    """NVFlare's kit files that need no key (StaticFileBuilder's alone: no CA, no certificate, no state), for
    a request of fedgen.provision.static.static_request."""
    roster = Roster.from_json(request["roster"])
    names = [str(n) for n in request["names"]]
    _, kits = run(roster, names, {}, names, with_certs=False, watch=watch)
    return {name: {path: f.data for path, f in kit.items()} for name, kit in kits.items()}


def check_issued(new_cert: Mapping[str, Any], names: Iterable[str]) -> None:
    """Raise ExternalError unless cert.json holds the root CA and an entry for each of `names`."""
    if not new_cert.get(ROOT_CERT) or not new_cert.get(ROOT_PRI_KEY):
        raise ExternalError(f"{FAILED}: no root CA in cert.json")
    for name in names:
        if not is_entry(new_cert.get(name)):
            raise ExternalError(f"{FAILED}: no certificate for {name} in cert.json")


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


def _provision_in(root: str, roster: Roster, in_project: list[str], *, with_kits: bool, with_certs: bool = True) -> Any:
    """Build the NVFlare project (only the participants in `in_project`) and provision it under `root`."""
    _load_lighter()
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
            participants.append(Participant(type=ParticipantType.ADMIN, name=member, org=member_org, props={PropKey.ROLE: role}))
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


def _read_kit(kit_dir: str) -> Kit:
    files: dict[str, KitFile] = {}
    for dirpath, dirnames, filenames in os.walk(kit_dir):
        dirnames.sort()
        for filename in filenames:
            full = os.path.join(dirpath, filename)
            st = os.lstat(full)
            rel = os.path.relpath(full, kit_dir).replace(os.sep, "/")
            if not stat.S_ISREG(st.st_mode):
                raise ExternalError(f"{FAILED}: unexpected non-regular file {rel} in a kit")
            with open(full, "rb") as f:
                files[rel] = KitFile(data=f.read(), mode=_kit_mode(rel, st.st_mode))
    if not files:
        raise ExternalError(f"{FAILED}: empty kit {os.path.basename(kit_dir)}")
    return MappingProxyType(dict(sorted(files.items())))
