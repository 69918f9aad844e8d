"""One file of a startup kit, as NVFlare wrote it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class KitFile:
    """One file of a startup kit."""

    data: bytes
    mode: int  # 0o644, 0o755 (scripts) or 0o600 (private keys)


Kit = Mapping[str, KitFile]  # kit path ("startup/fed_server.json", "local/...", "readme.txt") -> file
