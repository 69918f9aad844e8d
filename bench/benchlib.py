"""Shared helpers of the benchmarks in bench/: run a command and measure it, snapshot trees, print and save results.

Every benchmark writes bench/results/<name>.json (git-ignored) in one shape, so `bench/report.py` can put all
of them in one table:

    {"benchmark": "render", "when": "2026-01-01T00:00:00Z", "machine": {...}, "parameters": {...},
     "rows": [{"metric": ..., "value": ..., "unit": ..., "target": ..., "ok": true | false | null, "note": ...}],
     "details": {...}}

`target` is a short text such as "<= 0.75" (null when the row is for information only) and `ok` says whether
the value meets it. Benchmarks print figures; tests never assert on timings.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BIN_DIR = Path(sys.executable).parent  # the venv's bin: fedgen, nvflare


@dataclass
class Run:
    """One measured subprocess."""

    argv: list[str]
    seconds: float  # wall clock
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float  # user + system of the process and every descendant it waited for
    peak_rss_mb: float  # largest single process of the tree (wait4 ru_maxrss)
    tree_peak_rss_mb: float | None  # sum over the process tree, sampled every 20 ms (None without psutil)

    def check(self) -> Run:
        if self.returncode != 0:
            tail = "\n".join(self.stderr.strip().splitlines()[-5:])
            raise SystemExit(f"benchmark command failed ({self.returncode}): {' '.join(self.argv)}\n{tail}")
        return self


def run(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Run:
    """Run argv to completion; wall time, CPU time and peak RSS of exactly this process tree."""
    try:
        import psutil
    except ImportError:  # optional: the tree sum is then not reported
        psutil = None  # type: ignore[assignment]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=out, stderr=err)
        tree_peak = [0]
        stop = threading.Event()

        def sample() -> None:
            try:
                root = psutil.Process(proc.pid)
                while not stop.is_set():
                    total = 0
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except (psutil.NoSuchProcess, psutil.AccessDenied):
                            pass
                    tree_peak[0] = max(tree_peak[0], total)
                    stop.wait(0.02)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass

        sampler = threading.Thread(target=sample, daemon=True) if psutil else None
        if sampler:
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        if sampler:
            sampler.join()
        out.seek(0)
        err.seek(0)
        return Run(
            argv=list(argv),
            seconds=seconds,
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            tree_peak_rss_mb=tree_peak[0] / 2**20 if psutil else None,
        )


def snapshot(root: Path, *, exclude: Sequence[str] = (".fedgen/state",)) -> dict[str, bytes]:
    """Every regular file under root (relative posix path -> bytes), excluded folders left out."""
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = sorted(d for d in dirnames if (d if rel_dir == "." else f"{rel_dir}/{d}") not in exclude)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            files[rel] = (Path(dirpath) / name).read_bytes()
    return files


def changed(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> tuple[list[str], int]:
    """Paths created, updated or deleted, and the bytes that differ (size of new or removed contents)."""
    paths = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    return paths, sum(len(after.get(p, before.get(p, b""))) for p in paths)


@dataclass
class Row:
    metric: str
    value: float | int | str
    unit: str = ""
    target: str | None = None
    ok: bool | None = None
    note: str = ""


def meets(value: float, target: str) -> bool:
    op, _, number = target.partition(" ")
    limit = float(number.rstrip("x"))
    return {"<=": value <= limit, ">=": value >= limit, "==": value == limit}[op]


def row(metric: str, value: float | int, unit: str = "", target: str | None = None, note: str = "") -> Row:
    return Row(metric, value, unit, target, meets(float(value), target) if target else None, note)


def machine() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": cpus, "cpu": model, "python": platform.python_version(), "system": platform.platform(), "load": os.getloadavg()}


def fmt(value: float | int | str) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def print_table(title: str, rows: Sequence[Row]) -> None:
    header = ("metric", "value", "target", "status", "note")
    lines = [(r.metric, f"{fmt(r.value)} {r.unit}".strip(), r.target or "", "" if r.ok is None else ("ok" if r.ok else "MISSED"), r.note) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


def write_results(name: str, rows: Sequence[Row], *, parameters: Mapping[str, Any], details: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc = {
        "benchmark": name,
        "when": when,
        "machine": machine(),
        "parameters": dict(parameters),
        "rows": [asdict(r) for r in rows],
        "details": dict(details),
    }
    data = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    (RESULTS_DIR / f"{name}-{when.replace(':', '')}.json").write_text(data)
    latest = RESULTS_DIR / f"{name}.json"
    latest.write_text(data)
    return latest


def kubeconform_argv(binary: Path, schemas: Path, version: str, manifest: Path | str) -> list[str]:
    """kubeconform with the flags and offline schemas `fedgen validate` uses."""
    return [
        str(binary),
        "-strict",
        "-output",
        "json",
        "-summary",
        "-schema-location",
        f"{schemas}/crds/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
        "-schema-location",
        f"{schemas}/kubernetes/v{version}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
        str(manifest),
    ]


def build_folders(repo: Path) -> list[str]:
    """The folders a Config Sync repo's appliers build: clusters/<c>/ and clusters/<c>/bootstrap/."""
    out = []
    for cluster in sorted((repo / "clusters").iterdir()):
        for folder in (cluster, cluster / "bootstrap"):
            if (folder / "kustomization.yaml").is_file():
                out.append(folder.relative_to(repo).as_posix())
    return out


def hand_pipeline(repo: Path, kubectl: Path, kubeconform: Path, schemas: Path, version: str) -> str:
    """The shell script a platform team would run instead: kubectl kustomize of each folder, then
    kubeconform -strict over everything they printed (its exit status 1, invalid objects, still counts)."""
    folders = build_folders(repo)
    argv = kubeconform_argv(kubeconform, schemas, version, "$out")
    return (
        f"set -e\ncd {repo}\nout=$(mktemp)\n"
        + "".join(f"{kubectl} kustomize --load-restrictor=LoadRestrictionsNone {f} >> $out\necho --- >> $out\n" for f in folders)
        + " ".join(argv)
        + " > /dev/null || [ $? -eq 1 ]\nrm -f $out\n"
    )


def python_env(bytecode: str, scratch: Path, pythonpath: Path | None = None) -> dict[str, str]:
    """The environment of a measured fedgen process. bytecode "cached": compiled bytecode is read and written
    under scratch/pycache (as on any machine where the package is installed); "env": the environment as it
    is (with PYTHONDONTWRITEBYTECODE=1 every run compiles fedgen's sources again, ~0.3 s)."""
    env = dict(os.environ)
    if bytecode == "cached":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env
