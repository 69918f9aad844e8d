"""Startup kits kept in the state, so a render that issues nothing does not run (or even import) NVFlare.

A kit is a function of its inputs: the same cert.json gives byte-identical kits (tested). Each kit a render
builds is recorded in the state with a key, the SHA-256 of everything it is made from: this recipe's version
(bump RECIPE when lighter._provision_in changes its builders or their arguments), the installed nvflare version,
the project, the server's name, org, ports and host names, the participant's own roster entry, the root CA
certificate and key, and the participant's cert.json entry. When no certificate is to be issued and every kit
asked for has a record with the current key, provision() returns the recorded kits; any other input runs
NVFlare as always. NVFlare's import alone is ~0.4 s of a no-op render. The state already holds every private
key fedgen issues, so keeping kits (server.key included) there exposes nothing new.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from fedgen.nvflare_version import installed_nvflare_version
from fedgen.provision.kit import Kit, KitFile
from fedgen.provision.roster import Roster

RECIPE = 1


def kit_key(roster: Roster, name: str, cert: Mapping[str, Any]) -> str:
    """What the kit of `name` is made from, hashed; cert is NVFlare's cert.json content (root and entries)."""
    member = next((list(m) for m in roster.members if m[1] == name), None)
    payload = {
        "recipe": RECIPE,
        "nvflare": installed_nvflare_version(),
        "project": roster.project,
        "server": roster.server,
        "member": member,
        "root_cert": cert.get("root_cert"),
        "root_pri_key": cert.get("root_pri_key"),
        "entry": cert.get(name),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def kit_record(key: str, kit: Kit) -> dict[str, Any]:
    """The state's record of one kit: its key and every file (octal mode, base64 data)."""
    files = {path: {"mode": f"{f.mode:o}", "data": base64.b64encode(f.data).decode()} for path, f in sorted(kit.items())}
    return {"key": key, "files": files}


def cached_kit(record: Any, key: str) -> Kit | None:
    """The recorded kit when the record is well formed and made from the same inputs; else None."""
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("files"), dict):
        return None
    files: dict[str, KitFile] = {}
    try:
        for path, entry in sorted(record["files"].items()):
            files[str(path)] = KitFile(data=base64.b64decode(entry["data"], validate=True), mode=int(entry["mode"], 8))
    except (KeyError, TypeError, ValueError):
        return None
    return MappingProxyType(files) if files else None
