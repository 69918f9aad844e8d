"""Phase timings of the end-to-end runs: one table, one JSON in bench/benchlib.py's shape (bench/results/e2e.json)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "e2e.json"
# exposure -> phase timings of the end-to-end runs of this process (tests/e2e/test_e2e.py fills it)
RUNS: dict[str, dict[str, float]] = {}
DETAILS: dict[str, object] = {}
PHASES = [
    ("render", "fedgen render (provision + write the repo)", None),
    ("kustomize", "kubectl kustomize of the sync root", None),
    ("bundles", "fedgen client-bundle x3 in parallel (no lock), verified, extracted", None),
    ("enroll", "site 3, alongside the bundles: enroll kit, cert request, enroll approve, package", None),
    ("server_ready", "server started from the manifests until the admin API logs in", None),
    ("clients_registered", "the three sites started until check_status lists them", None),
    ("job", "submit until FINISHED:COMPLETED (2 rounds)", None),
    ("status", "fedgen status --admin: a kube-apiserver in the server's namespace, ready, then one site shut down (gateway run)", None),
    ("shutdown", "shutdown('all') until every process exited", None),
    ("total", "the whole flow", "<= 120"),
]


def _benchlib() -> Any:
    """bench/benchlib.py (bench/ is not a package); registered in sys.modules, as its dataclasses need."""
    name = "fedgen_bench_benchlib"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "benchlib.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def rows(runs: dict[str, dict[str, float]]) -> list[Any]:
    lib = _benchlib()
    out = []
    for exposure, timings in runs.items():
        for key, note, target in PHASES:
            if key in timings:
                out.append(lib.row(f"{exposure}: {key}", round(timings[key], 2), "s", target, note))
    return out


def table(runs: dict[str, dict[str, float]]) -> str:
    phases = [key for key, _, _ in PHASES]
    names = list(runs)
    width = max(len(p) for p in phases)
    lines = ["phase".ljust(width) + "".join(f"  {n:>12}" for n in names)]
    lines.append("-" * len(lines[0]))
    for phase in phases:
        cells = "".join(f"  {runs[n][phase]:>10.2f} s" if phase in runs[n] else f"  {'-':>12}" for n in names)
        lines.append(phase.ljust(width) + cells)
    return "\n".join(lines)


def write(runs: dict[str, dict[str, float]], details: dict[str, Any], *, timestamped: bool = False) -> Path:
    """bench/results/e2e.json (and e2e-<when>.json when timestamped, as the benchmarks do)."""
    lib = _benchlib()
    if timestamped:
        return lib.write_results("e2e", rows(runs), parameters={"exposures": list(runs)}, details=details)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "e2e",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": lib.machine(),
        "parameters": {"exposures": list(runs), "source": "pytest tests/e2e"},
        "rows": [asdict(r) for r in rows(runs)],
        "details": details,
    }
    RESULTS.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return RESULTS
