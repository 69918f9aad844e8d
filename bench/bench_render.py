"""Benchmark `fedgen render` on a large federation against `nvflare provision` of the same participants.

    .venv/bin/python bench/bench_render.py [--sites 500] [--repeat 3] [--rounds 2] [--serial] [--profile] [--keep DIR]

Measured in one run, each command a separate subprocess (wall time, CPU time, peak RSS):
  (a) cold render of an N-site federation, and `nvflare provision` of the equivalent project.yml
      (api_version 3, the same builders fedgen uses, the same participants), run back to back;
  (b) +1 site: one more site in the spec, render again; the files it changed and the certificates it issued;
  (c) no-op: render the same spec again; seconds and bytes changed (must be 0);
  (d) peak RSS of each (largest process, and the sum over the process tree while it ran).
--serial adds a cold render with FEDGEN_PROVISION_WORKERS=1 (parallel issuance off), --profile runs the cold
and no-op renders once more under cProfile and prints their top entries. Prints a table with the targets of
issues 7 and 19 and writes bench/results/render.json (see bench/benchlib.py for the format).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import BIN_DIR, Row, row  # noqa: E402

PROJECT = "benchfed"
SERVER = {"name": "flserver", "org": "bench_org", "ports": {"fl": 8002, "admin": 8003}, "hostNames": ["fl.bench.example.org", "flserver"]}
ADMIN = {"name": "admin@bench.example.org", "org": "bench_org", "role": "project_admin"}


def site(i: int) -> dict[str, str]:
    return {"name": f"site-{i:04d}", "org": f"hospital_{i % 10}"}


def spec_document(sites: int) -> dict[str, Any]:
    return {
        "apiVersion": "fedgen/v1",
        "kind": "Federation",
        "metadata": {"name": PROJECT},
        "spec": {
            "nvflare": {"version": "2.9.0", "image": "us-east4-docker.pkg.dev/bench-proj/fl/nvflare:2.9.0"},
            "gitops": {"engine": "config-sync", "repo": "https://github.com/example/bench-gitops.git", "revision": "main"},
            "sealing": {"certificate": "sealing.pem", "scope": "strict"},
            "clusters": [{"name": "bench-gke", "projectId": "bench-proj", "projectNumber": "123456789012", "region": "us-east4"}],
            "platform": {"resourceNamePrefix": "acp", "platformName": "dev"},
            "workspace": {"bucket": "nvf-ws"},
            "server": {
                **{k: SERVER[k] for k in ("name", "org")},
                "cluster": "bench-gke",
                "tenant": "fl-bench",
                "ports": SERVER["ports"],
                "hostNames": SERVER["hostNames"],
                "exposure": "gateway",
                "loadBalancerSourceRanges": ["203.0.113.0/24"],
            },
            "sites": [site(i) for i in range(sites)],
            "admins": [ADMIN],
        },
    }


def project_yml(sites: int) -> dict[str, Any]:
    """nvflare provision's input for the same participants and the builders fedgen runs."""
    server = {
        "name": SERVER["name"],
        "type": "server",
        "org": SERVER["org"],
        "fed_learn_port": SERVER["ports"]["fl"],
        "admin_port": SERVER["ports"]["admin"],
        "default_host": SERVER["hostNames"][0],
        "host_names": SERVER["hostNames"],
    }
    return {
        "api_version": 3,
        "name": PROJECT,
        "description": "fedgen benchmark",
        "participants": [server, *({**site(i), "type": "client"} for i in range(sites)), {**ADMIN, "type": "admin"}],
        "builders": [
            {"path": "nvflare.lighter.impl.workspace.WorkspaceBuilder"},
            {"path": "nvflare.lighter.impl.static_file.StaticFileBuilder", "args": {"config_folder": "config", "scheme": "grpc"}},
            {"path": "nvflare.lighter.impl.cert.CertBuilder"},
            {"path": "nvflare.lighter.impl.signature.SignatureBuilder"},
        ],
    }


def write_yaml(data: Any, path: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with path.open("w") as fh:
        yaml.dump(data, fh)


def prepare(work: Path, sites: int) -> tuple[Path, Path]:
    """A repo folder holding spec/federation.yaml (+ sealing.pem), and project.yml for nvflare."""
    from fedgen.seal.certificate import generate_development_keypair

    repo = work / "repo"
    (repo / "spec").mkdir(parents=True)
    _, cert = generate_development_keypair()  # the private key is thrown away: only sealing matters here
    (repo / "spec" / "sealing.pem").write_bytes(cert)
    write_yaml(spec_document(sites), repo / "spec" / "federation.yaml")
    write_yaml(project_yml(sites), work / "project.yml")
    return repo, work / "project.yml"


def render(repo: Path, *args: str, env: dict[str, str] | None = None) -> benchlib.Run:
    return benchlib.run([str(BIN_DIR / "fedgen"), "render", str(repo / "spec" / "federation.yaml"), "--repo", str(repo), *args], env=env).check()


def issued(run: benchlib.Run) -> list[str]:
    """The certificates a render says it issued (`issued N certificates: a, b … and K more`): N names, the
    ones the summary leaves out given as "…"."""
    for line in run.stderr.splitlines():
        found = re.fullmatch(r"issued (\d+) certificates?: (.*)", line)
        if found:
            count, shown = int(found.group(1)), found.group(2).split(" … and ")[0].split(", ")
            return (shown + ["…"] * count)[:count]
    return []


def state_file(repo: Path) -> Path:
    """The default local state of the federation (.fedgen/state/<federation>/state.json, or older layouts)."""
    found = sorted((repo / ".fedgen" / "state").rglob("state.json"))
    if not found:
        raise SystemExit(f"no state.json under {repo / '.fedgen' / 'state'}")
    return found[0]


def state_bytes(repo: Path) -> bytes:
    return state_file(repo).read_bytes()


def profile(repo: Path, label: str, out: Path, top: int) -> list[str]:
    """Run a render under cProfile (a subprocess); return the top entries by cumulative and own time."""
    prof = out / f"{label}.prof"
    benchlib.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "fedgen", "render", str(repo / "spec" / "federation.yaml"), "--repo", str(repo)]
    ).check()
    stats = pstats.Stats(str(prof))
    lines: list[str] = []
    for order in ("cumulative", "tottime"):
        entries = sorted(stats.stats.items(), key=lambda kv: kv[1][3 if order == "cumulative" else 2], reverse=True)  # type: ignore[attr-defined]
        lines.append(f"{label}: top {top} by {order} time (seconds; the main process only)")
        shown = 0
        for (file, line, func), (_, calls, tottime, cumtime, _) in entries:
            where = f"{Path(file).name}:{line}({func})" if line else func
            if order == "cumulative" and ("/fedgen/cli/" in file or any(s in where for s in ("<frozen", "click/", "runpy", "__main__", "builtins.exec"))):
                continue
            lines.append(f"  {cumtime if order == 'cumulative' else tottime:8.2f}  {calls:>7}  {where}")
            shown += 1
            if shown == top:
                break
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="+1-site and no-op renders (median reported)")
    parser.add_argument("--rounds", type=int, default=1, help="cold nvflare/fedgen pairs, alternated (median ratio reported)")
    parser.add_argument("--serial", action="store_true", help="also time a cold render without parallel issuance")
    parser.add_argument("--profile", action="store_true", help="also profile the cold and no-op renders")
    parser.add_argument("--keep", type=Path, help="keep the rendered repo and nvflare workspace here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fedgen-bench-"))
    try:
        return measure(work, args)
    finally:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for child in work.iterdir():
                shutil.move(str(child), str(args.keep / child.name))
            print(f"kept in {args.keep}")
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, args: argparse.Namespace) -> int:
    n = args.sites
    repo, project = prepare(work, n)
    participants = n + 2
    print(f"benchmark: {n} sites + server + admin = {participants} participants; {benchlib.machine()['cpus']} CPUs; work dir {work}")

    # (a) cold, side by side: nvflare provision, then fedgen render (default workers), alternated per round
    pairs: list[tuple[benchlib.Run, benchlib.Run]] = []
    for r in range(args.rounds):
        target = repo if r == 0 else work / f"repo-round{r}"
        if r:
            shutil.copytree(repo / "spec", target / "spec")
        nv = benchlib.run([str(BIN_DIR / "nvflare"), "provision", "-p", str(project), "-w", str(work / f"nvflare-ws{r}")]).check()
        print(f"  nvflare provision: {nv.seconds:.1f} s")
        fg = render(target)
        print(f"  fedgen render (cold): {fg.seconds:.1f} s (ratio {fg.seconds / nv.seconds:.2f})")
        assert len(issued(fg)) == participants, "the cold render did not issue every certificate"
        pairs.append((nv, fg))
        if r:
            shutil.rmtree(target)
            shutil.rmtree(work / f"nvflare-ws{r}")
    nvflare = sorted(pairs, key=lambda p: p[0].seconds)[len(pairs) // 2][0]
    cold = sorted(pairs, key=lambda p: p[1].seconds)[len(pairs) // 2][1]
    ratio = statistics.median(fg.seconds / nv.seconds for nv, fg in pairs)
    serial = None
    if args.serial:
        serial_repo = work / "repo-serial"
        shutil.copytree(repo / "spec", serial_repo / "spec")
        serial = render(serial_repo, env={**os.environ, "FEDGEN_PROVISION_WORKERS": "1"})
        print(f"  fedgen render (cold, FEDGEN_PROVISION_WORKERS=1): {serial.seconds:.1f} s")
        shutil.rmtree(serial_repo)

    # (b) +1 site, repeated with a new site each time
    spec_path = repo / "spec" / "federation.yaml"
    plus: list[benchlib.Run] = []
    plus_changes: list[list[str]] = []
    plus_issued: list[list[str]] = []
    for k in range(args.repeat):
        doc = spec_document(n + k + 1)
        before_tree, before_state = benchlib.snapshot(repo), json.loads(state_bytes(repo))
        write_yaml(doc, spec_path)
        run = render(repo)
        after_state = json.loads(state_bytes(repo))
        paths, _ = benchlib.changed(before_tree, benchlib.snapshot(repo))
        paths = [p for p in paths if p != "spec/federation.yaml"]
        kept = all(after_state["nvflare_cert"].get(name) == entry for name, entry in before_state["nvflare_cert"].items())
        assert kept, "+1 site changed an existing certificate"
        plus.append(run)
        plus_changes.append(paths)
        plus_issued.append(issued(run))
        print(f"  +1 site: {run.seconds:.2f} s, issued {issued(run)}, changed {paths or 'nothing'}")

    # (c) no-op
    noop: list[benchlib.Run] = []
    noop_bytes: list[int] = []
    state_rewritten = False
    for _ in range(args.repeat):
        before_tree, before_state = benchlib.snapshot(repo), state_bytes(repo)
        mtime = state_file(repo).stat().st_mtime_ns
        run = render(repo)
        _, nbytes = benchlib.changed(before_tree, benchlib.snapshot(repo))
        state_rewritten |= state_bytes(repo) != before_state or state_file(repo).stat().st_mtime_ns != mtime
        noop.append(run)
        noop_bytes.append(nbytes)
        print(f"  no-op: {run.seconds:.2f} s, {nbytes} bytes changed")

    profiles: list[str] = []
    if args.profile:
        prof_dir = benchlib.RESULTS_DIR / "profiles"
        prof_dir.mkdir(parents=True, exist_ok=True)
        profiles += profile(repo, "noop", prof_dir, 15)
        cold_repo = work / "repo-profile"
        shutil.copytree(repo / "spec", cold_repo / "spec")
        profiles += profile(cold_repo, "cold", prof_dir, 15)
        shutil.rmtree(cold_repo)

    plus_s = statistics.median(r.seconds for r in plus)
    noop_s = statistics.median(r.seconds for r in noop)
    all_runs = [cold, *plus, *noop]
    rss = max(r.peak_rss_mb for r in all_runs)
    tree_rss = max((r.tree_peak_rss_mb or 0) for r in all_runs)
    rows: list[Row] = [
        row(f"nvflare provision, {participants} participants", nvflare.seconds, "s", note=f"cpu {nvflare.cpu_seconds:.1f} s"),
        row("fedgen render, cold", cold.seconds, "s", note=f"cpu {cold.cpu_seconds:.1f} s (workers included)"),
    ]
    if serial:
        rows.append(row("fedgen render, cold, serial issuance", serial.seconds, "s", note=f"ratio {serial.seconds / nvflare.seconds:.2f}"))
    rows += [
        row(
            "cold render / nvflare provision",
            ratio,
            "x",
            "<= 0.5",
            note=f"median of {len(pairs)} back-to-back pairs" if len(pairs) > 1 else "one back-to-back pair",
        ),
        row("+1 site render", plus_s, "s", "<= 1", note=f"median of {len(plus)}"),
        row("nvflare provision / +1 site render", nvflare.seconds / plus_s, "x", ">= 20"),
        row("+1 site: files changed", max(len(c) for c in plus_changes), "", note=", ".join(sorted({p for c in plus_changes for p in c})) or "none"),
        row("+1 site: certificates issued", max(len(i) for i in plus_issued), "", "== 1"),
        row("no-op render", noop_s, "s", "<= 1.5", note=f"median of {len(noop)}"),
        row(
            "no-op: bytes changed",
            max(noop_bytes) + (1 if state_rewritten else 0),
            "B",
            "== 0",
            note="state rewritten" if state_rewritten else "state untouched",
        ),
        row("peak RSS, cold render (largest process)", cold.peak_rss_mb, "MB", "<= 300", note=f"process tree {cold.tree_peak_rss_mb or 0:.0f} MB"),
        row("peak RSS, +1 site render", max(r.peak_rss_mb for r in plus), "MB", "<= 300"),
        row("peak RSS, no-op render", max(r.peak_rss_mb for r in noop), "MB", "<= 300"),
        row("peak RSS, nvflare provision", nvflare.peak_rss_mb, "MB", note="for comparison"),
        row("peak RSS, any fedgen render (process tree)", tree_rss, "MB", "<= 300", note=f"largest process {rss:.0f} MB"),
    ]
    title = f"fedgen render benchmark: {n} sites, {benchlib.machine()['cpus']} CPUs, load {benchlib.machine()['load'][0]:.2f}"
    benchlib.print_table(title, rows)
    for line in profiles:
        print(line)
    details = {
        "nvflare": vars(nvflare) | {"stdout": "", "stderr": ""},
        "cold": vars(cold) | {"stdout": "", "stderr": ""},
        "serial": (vars(serial) | {"stdout": "", "stderr": ""}) if serial else None,
        "plus_one": [{"seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb, "issued": i, "changed": c} for r, i, c in zip(plus, plus_issued, plus_changes)],
        "noop": [{"seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb, "bytes_changed": b} for r, b in zip(noop, noop_bytes)],
        "profiles": profiles,
        # Hooks: bench_validate.py and the e2e benchmark write results/validate.json and results/e2e.json in the
        # same format; bench/report.py prints every results/*.json together.
    }
    details["pairs"] = [{"nvflare": nv.seconds, "fedgen": fg.seconds} for nv, fg in pairs]
    path = benchlib.write_results(
        "render",
        rows,
        parameters={"sites": n, "repeat": args.repeat, "rounds": args.rounds, "workers": os.environ.get("FEDGEN_PROVISION_WORKERS", "auto")},
        details=details,
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
