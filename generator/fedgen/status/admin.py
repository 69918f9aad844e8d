"""Which sites are connected to the NVFlare server, asked through the FLARE API with an admin's kit.

`--admin` takes what `fedgen client-bundle ADMIN` wrote (the tar.gz, extracted into a private temporary
folder that is removed afterwards) or an extracted kit folder. The login dials what the kit's
fed_admin.json says, as the admin console would; every step is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tarfile
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgen.errors import ExternalError, InputError
from fedgen.status.model import Check, Problem

ADMIN_CONFIG = "startup/fed_admin.json"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # an admin bundle is a few kB
# NVFlare's own timeout bounds the connection attempts, not setting up its communication cell around them.
SLACK = 5.0


class NVFlareUnreachable(ExternalError):
    """The NVFlare server did not answer the admin login (or a command) in time."""


class AdminRefused(ExternalError):
    """The NVFlare server refused the admin's certificate or role."""


@dataclass(frozen=True)
class AdminKit:
    folder: Path  # holds startup/fed_admin.json
    username: str
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def _kit_in(folder: Path) -> Path | None:
    if (folder / ADMIN_CONFIG).is_file():
        return folder
    found = [c for c in sorted(folder.iterdir()) if c.is_dir() and (c / ADMIN_CONFIG).is_file()] if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def _read_kit(folder: Path, given: Path) -> AdminKit:
    try:
        admin = json.loads((folder / ADMIN_CONFIG).read_text())["admin"]
        return AdminKit(folder, str(admin["username"]), str(admin["host"]), int(admin["port"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--admin {given}: {ADMIN_CONFIG} is not an NVFlare admin configuration ({type(exc).__name__}: {exc})") from None


@contextlib.contextmanager
def open_admin_kit(given: Path) -> Iterator[AdminKit]:
    """The admin kit in a bundle (tar.gz) or folder; InputError when there is none."""
    if given.is_dir():
        kit = _kit_in(given)
        if kit is None:
            raise InputError(f"--admin {given}: no {ADMIN_CONFIG} in it or in exactly one folder below it (pass an admin bundle or kit)")
        yield _read_kit(kit, given)
        return
    if not given.is_file():
        raise InputError(f"--admin {given}: no such file or folder")
    if given.stat().st_size > MAX_BUNDLE_BYTES:
        raise InputError(f"--admin {given}: larger than {MAX_BUNDLE_BYTES} bytes, not an admin bundle")
    with tempfile.TemporaryDirectory(prefix="fedgen-admin-") as tmp:  # created 0700: it holds the admin's key
        try:
            with tarfile.open(given, "r:gz") as archive:
                archive.extractall(tmp, filter="data")  # the data filter refuses links and paths out of tmp
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"--admin {given}: not a readable tar.gz bundle ({exc})") from None
        kit = _kit_in(Path(tmp))
        if kit is None:
            raise InputError(f"--admin {given}: the bundle holds no admin kit ({ADMIN_CONFIG}); is it a site's bundle?")
        yield _read_kit(kit, given)


def _call(what: str, kit: AdminKit, fn: Any, timeout: float) -> Any:
    """Run fn in a daemon thread: NVFlare's own timeouts do not cover every wait, a hung call must not hold us."""
    from nvflare.fuel.flare_api.api_spec import AuthenticationError, AuthorizationError

    result: list[Any] = [None, None]

    def run() -> None:
        try:
            result[0] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result[1] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise NVFlareUnreachable(f"NVFlare server at {kit.endpoint}: {what} did not answer within {timeout:g} s")
    error = result[1]
    if isinstance(error, (AuthenticationError, AuthorizationError)):
        raise AdminRefused(f"NVFlare server at {kit.endpoint} refused admin {kit.username} ({what}): {error}")
    if error is not None:
        raise NVFlareUnreachable(f"NVFlare server at {kit.endpoint}: {what} failed: {type(error).__name__}: {' '.join(str(error).split())[:300]}")
    return result[0]


def connected_sites(kit: AdminKit, timeout: float) -> list[str]:
    """The client names the server lists (check_status). NVFlare's progress prints are dropped: they would
    land in the report; failures come back as exceptions."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    # NVFlare's communication layer logs every failed attempt, also from threads that outlive the session:
    # the report says what failed, so its loggers stay quiet for the rest of the command.
    logging.getLogger("nvflare").setLevel(logging.CRITICAL + 1)
    with contextlib.redirect_stdout(io.StringIO()):
        session = _call("admin login", kit, lambda: new_secure_session(kit.username, str(kit.folder), timeout=timeout), timeout * 2 + SLACK)
        try:
            info = _call("check_status", kit, session.get_system_info, timeout * 2 + SLACK)
        finally:
            with contextlib.suppress(Exception):
                _call("logout", kit, session.close, timeout)
    return sorted(str(c.name) for c in info.client_info)


def sites_check(sites: Sequence[str], connected: Sequence[str], kit: AdminKit) -> tuple[Check, dict[str, Any]]:
    missing = sorted(set(sites) - set(connected))
    unknown = sorted(set(connected) - set(sites))
    problems = []
    for site in missing:
        problems.append(Problem(f"site {site} is not connected to the NVFlare server",
                                f"start its client (its bundle's run.sh, or its site cluster's Deployment) and read its log: it must reach {kit.endpoint.rsplit(':', 1)[0]} on the fl port"))  # fmt: skip
    if unknown:
        problems.append(Problem(f"connected but not in the spec: {', '.join(unknown)} (a removed site's certificate stays valid)",
                                "stop that client, or lock it out with a new root CA (`fedgen rotate SPEC --root-ca`)"))  # fmt: skip
    detail = f"{len(set(sites) & set(connected))}/{len(sites)} sites connected (admin {kit.username} at {kit.endpoint})"
    return Check("sites", detail, tuple(problems)), {"sites": {"connected": sorted(connected), "missing": missing, "unknown": unknown}}
