"""How big the NVFlare server must be for a federation: clients it admits, memory it needs. Pure arithmetic.

NVFlare's server refuses every regular client past `max_num_clients` ("Maximum number of clients reached";
nvflare/private/fed/server/client_manager.py), read from `servers[0]` of fed_server.json merged with
local/resources.json; NVFlare 2.9's provisioning template writes 100 into resources.json.default.

Memory, measured with NVFlare 2.9 in secure mode and a tiny numpy model (see docs/sizing.md): the server
process holds about 82 MB + 0.34 MB per connected site; every running job is a second process in the same
container at about 49 MB + 4.3 MB per participating site. The estimate assumes the worst case the
configuration allows: `max_jobs` jobs at once, each with every declared site.

Capacity steps: both figures are computed for the declared sites rounded up to a multiple of SITE_STEP, so
adding a site changes the server (and restarts it) only when the federation crosses a step, not every time.
"""

from __future__ import annotations

import math

# NVFlare 2.9's provisioning template: max_num_clients in resources.json.default. (Its job scheduler's max_jobs,
# 4, is the spec schema's default for server.maxJobs; tests/spec/test_sizing.py checks they agree.)
NVFLARE_MAX_CLIENTS = 100
SITE_STEP = 50

# Measured figures, MiB (the measurement's MB, read as MiB: slightly more, never less).
SERVER_BASE_MIB = 82.0
SERVER_PER_SITE_MIB = 0.34
JOB_BASE_MIB = 49.0
JOB_PER_SITE_MIB = 4.3
# The measurement used a tiny model and a quiet server: real jobs hold more (a 150-site job measured ~0.95 GiB
# in all, where the per-site figures alone give ~0.81 GiB).
HEADROOM = 1.25
MEMORY_STEP_MIB = 512
# The rendered size before sizing followed the federation (the reference architecture's 1Gi): the floor.
MEMORY_FLOOR_MIB = 1024
DEFAULT_CPU = "1"


def sized_sites(sites: int) -> int:
    """The declared sites rounded up to the capacity step (at least one step)."""
    return max(1, math.ceil(sites / SITE_STEP)) * SITE_STEP


def default_max_clients(sites: int) -> int:
    """max_num_clients when the spec does not set server.maxClients: every declared site (those enrolling
    by request included), by capacity step, never below NVFlare's own default."""
    return max(NVFLARE_MAX_CLIENTS, sized_sites(sites))


def estimate_mib(sites: int, max_jobs: int) -> float:
    """Memory of the server container with `max_jobs` jobs of `sites` sites each running, in MiB."""
    server = SERVER_BASE_MIB + SERVER_PER_SITE_MIB * sites
    job = JOB_BASE_MIB + JOB_PER_SITE_MIB * sites
    return server + max_jobs * job


def default_memory_mib(sites: int, max_jobs: int) -> int:
    """The rendered memory request and limit: the estimate for the capacity step plus headroom, rounded up
    to MEMORY_STEP_MIB, never below MEMORY_FLOOR_MIB."""
    wanted = estimate_mib(sized_sites(sites), max_jobs) * HEADROOM
    return max(MEMORY_FLOOR_MIB, math.ceil(wanted / MEMORY_STEP_MIB) * MEMORY_STEP_MIB)


def quantity_mib(mib: int) -> str:
    """A Kubernetes memory quantity: whole GiB as Gi, else Mi."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


def memory_bytes(value: object) -> float | None:
    """Bytes of a Kubernetes quantity ('1Gi', '1536Mi', '2G', '1e9', 1073741824); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], factor)
    if text[-1:] in _DECIMAL and not text[-1:].isdigit():
        return _number(text[:-1], _DECIMAL[text[-1]])
    return _number(text, 1)


def _number(text: str, factor: float) -> float | None:
    if not text or not all(c.isdigit() or c in ".eE+-" for c in text) or not text[0].isdigit():
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number * factor if math.isfinite(number) and number >= 0 else None
