"""The installed nvflare's version, without importing nvflare (its import alone costs ~0.4 s)."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def installed_nvflare_version() -> str | None:
    """From the nvflare-<version>.dist-info beside the package (a glob, ~1 ms); else importlib.metadata,
    which scans every distribution on sys.path (~60 ms). None when nvflare is not installed."""
    spec = importlib.util.find_spec("nvflare")
    if spec is None:
        return None
    if spec.origin:
        found = sorted(Path(spec.origin).parent.parent.glob("nvflare-*.dist-info"))
        if len(found) == 1:
            return found[0].name.removeprefix("nvflare-").removesuffix(".dist-info")
    from importlib import metadata  # only here: its import alone costs ~15 ms, on validate's critical path

    try:
        return metadata.version("nvflare")
    except metadata.PackageNotFoundError:
        return None
