"""The kit the doctor checks: the server it dials and the files it authenticates with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class KitError(Exception):
    """The kit cannot be read: a missing or malformed file."""


@dataclass(frozen=True)
class Kit:
    folder: Path
    kind: str  # site | admin
    name: str
    host: str  # the name the kit dials
    port: int
    identity: str  # the CN the server's certificate must carry
    security: str  # mtls | tls | clear
    cert: Path
    key: Path
    root: Path


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise KitError(f"cannot read {path.name}: {exc.strerror}") from None
    except ValueError as exc:
        raise KitError(f"{path.name} is not JSON ({exc})") from None


def load_kit(folder: Path) -> Kit:
    """The server the kit dials and the files it authenticates with, from fed_client.json or fed_admin.json."""
    startup = folder / "startup"
    try:
        if (startup / "fed_client.json").is_file():
            doc = _json(startup / "fed_client.json")
            server, client = doc["servers"][0], doc["client"]
            host, _, port = str(server["service"]["target"]).rpartition(":")
            return Kit(
                folder,
                "site",
                str(client.get("fqsn", folder.name)),
                host,
                int(port),
                str(server["identity"]),
                str(client.get("connection_security", "mtls")),
                startup / client["ssl_cert"],
                startup / client["ssl_private_key"],
                startup / client["ssl_root_cert"],
            )
        if (startup / "fed_admin.json").is_file():
            admin = _json(startup / "fed_admin.json")["admin"]
            return Kit(
                folder,
                "admin",
                str(admin["username"]),
                str(admin["host"]),
                int(admin["port"]),
                str(admin["server_identity"]),
                str(admin.get("connection_security", "mtls")),
                startup / admin["client_cert"],
                startup / admin["client_key"],
                startup / admin["ca_cert"],
            )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise KitError(f"the kit's server settings are incomplete ({type(exc).__name__}: {exc})") from None
    raise KitError(f"{startup} holds neither fed_client.json nor fed_admin.json")
