"""Benchmark `fedgen validate` of a platform repository holding many federations against the hand toolchain.

    .venv/bin/python bench/bench_many.py [--federations 30] [--sites 2] [--repeat 7] [--compare-with SRC]
                                         [--bytecode cached|env] [--keep DIR]

Renders --federations federations into one repository, as a platform team hosting many studies on one cluster
would: each its own spec (spec/study_NN.yaml, from examples/federation.yaml), tenant, server name and ports, all
on the same cluster (so one sync root builds them all); and one federation alone into a second repository. Then,
--repeat rounds, each command a fresh process, the two repositories and the two commands interleaved:
  (a) the hand toolchain: `kubectl kustomize` of each sync root (clusters/<c>/ and its bootstrap/), then
      `kubeconform -strict` with the schemas fedgen uses (bench/benchlib.py: hand_pipeline);
  (b) `fedgen validate --repo <repo> --format json` (everything: file scan, builds, kubeconform, the re-render
      of every spec, every rule);
  (c) with --compare-with SRC: (b) with the fedgen found in SRC/generator (another version of the source, e.g.
      `git worktree add /tmp/old <commit>`), so a before/after is measured in one run, under the same load.
Prints the medians, the ratios of issue 19 (validate / hand toolchain at N federations, validate - hand
toolchain for one federation, each from the rounds' pairs), the peak RSS of validate's process tree, and the
load average before and after; writes bench/results/many.json (see bench/benchlib.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import BIN_DIR, REPO_ROOT, Row, row  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "federation.yaml"
TARGET_MANY = "<= 2.0"  # validate / hand toolchain, N federations
TARGET_ONE = "<= 0.5"  # seconds above the hand toolchain, one federation
TARGET_RSS = "<= 300"  # MB, validate's process tree at N federations


def study(i: int, sites: int) -> dict[str, Any]:
    """Federation i: the example with its own name, tenant, server name and ports, on the example's cluster."""
    from ruamel.yaml import YAML

    doc = YAML(typ="safe", pure=True).load(EXAMPLE.read_text())
    doc["metadata"]["name"] = f"study_{i:02d}"
    doc["spec"]["server"].update(
        name=f"server{i:02d}", tenant=f"fl-{i:02d}", ports={"fl": 8002 + 2 * i, "admin": 8003 + 2 * i}, hostNames=[f"server{i:02d}.example.org"]
    )
    doc["spec"]["sites"] = [{"name": f"s{i:02d}-site{j}", "org": f"hospital_{j}"} for j in range(sites)]
    return doc


def build_repo(repo: Path, federations: int, sites: int) -> None:
    """Render `federations` studies into one repo, one after the other (each a cold render of its own)."""
    from ruamel.yaml import YAML

    shutil.copytree(EXAMPLE.parent / "keys", repo / "spec" / "keys")
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    for i in range(federations):
        spec = repo / "spec" / f"study_{i:02d}.yaml"
        with spec.open("w") as fh:
            yaml.dump(study(i, sites), fh)
        benchlib.run([str(BIN_DIR / "fedgen"), "render", str(spec), "--repo", str(repo)]).check()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--federations", type=int, default=30)
    parser.add_argument("--sites", type=int, default=2, help="sites per federation")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--compare-with", type=Path, metavar="SRC", help="also run the fedgen in SRC/generator (another version)")
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached")
    parser.add_argument("--keep", type=Path, help="build the repositories in this folder and keep them (reused when present)")
    args = parser.parse_args()

    from fedgen.executables import find_tool
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, DEFAULT_SCHEMAS_DIR, find_kubeconform

    kubectl, kubeconform = find_tool("kubectl"), find_kubeconform()
    version = DEFAULT_KUBERNETES_VERSION
    source = args.compare_with.resolve() if args.compare_with else REPO_ROOT
    if not any((source / "generator" / "fedgen" / cli).is_file() for cli in ("cli.py", "cli/__init__.py")):
        raise SystemExit(f"--compare-with {source}: no fedgen command line in generator/fedgen there")
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="fedgen-bench-many-"))
    scratch.mkdir(parents=True, exist_ok=True)
    n = args.federations
    repos = {"1": scratch / "one", str(n): scratch / f"many-{n}"}
    for label, repo in repos.items():
        if not (repo / ".fedgen" / "owned").is_dir():
            shutil.rmtree(repo, ignore_errors=True)
            started = time.perf_counter()
            build_repo(repo, int(label), args.sites)
            print(f"rendered {label} federation(s) into {repo} in {time.perf_counter() - started:.0f} s")

    commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}
    for label, repo in repos.items():
        script = scratch / f"hand-{label}.sh"
        script.write_text(benchlib.hand_pipeline(repo, kubectl, kubeconform, DEFAULT_SCHEMAS_DIR, version))
        commands[f"hand {label}"] = (["bash", str(script)], None)
        validate = [sys.executable, "-m", "fedgen", "validate", "--repo", str(repo), "--format", "json"]
        commands[f"fedgen {label}"] = (validate, benchlib.python_env(args.bytecode, scratch))
        if args.compare_with:
            # The other source finds this checkout's kubeconform (a `git worktree add` has no .tools/).
            env = benchlib.python_env(args.bytecode, scratch / "compared", source / "generator")
            commands[f"compared {label}"] = (validate, {**env, "FEDGEN_KUBECONFORM": str(kubeconform)})
    for name, (argv, env) in commands.items():  # warm-up: bytecode written, files in the page cache
        if not name.startswith("hand"):
            benchlib.run(argv, env=env)

    load_before = os.getloadavg()
    runs: dict[str, list[benchlib.Run]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, (argv, env) in commands.items():
            result = benchlib.run(argv, env=env)
            if result.returncode not in (0, 1):  # 1: findings (warnings do not fail; errors would)
                raise SystemExit(f"{name} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
            runs[name].append(result)
    load_after = os.getloadavg()

    def med(name: str, field: str = "seconds") -> float:
        return statistics.median(getattr(r, field) for r in runs[name])

    def paired(a: str, b: str, op: str) -> float:
        pairs = zip(runs[a], runs[b])
        return statistics.median(x.seconds / y.seconds if op == "/" else x.seconds - y.seconds for x, y in pairs)

    def tree_rss(name: str) -> float:
        return max((r.tree_peak_rss_mb or r.peak_rss_mb) for r in runs[name])

    many = str(n)
    rows: list[Row] = [
        row(f"hand toolchain, {n} federations (median wall)", med(f"hand {many}"), "s", note=f"cpu {med(f'hand {many}', 'cpu_seconds'):.2f} s"),
        row(f"fedgen validate, {n} federations (median wall)", med(f"fedgen {many}"), "s", note=f"cpu {med(f'fedgen {many}', 'cpu_seconds'):.2f} s"),
        row(
            f"fedgen validate / hand toolchain, {n} federations", paired(f"fedgen {many}", f"hand {many}", "/"), "x", TARGET_MANY, note="median of paired runs"
        ),
        row("hand toolchain, 1 federation (median wall)", med("hand 1"), "s", note=f"cpu {med('hand 1', 'cpu_seconds'):.2f} s"),
        row("fedgen validate, 1 federation (median wall)", med("fedgen 1"), "s", note=f"cpu {med('fedgen 1', 'cpu_seconds'):.2f} s"),
        row("fedgen validate - hand toolchain, 1 federation", paired("fedgen 1", "hand 1", "-"), "s", TARGET_ONE, note="median of paired runs"),
        row(
            f"fedgen validate peak RSS, {n} federations (process tree)",
            tree_rss(f"fedgen {many}"),
            "MB",
            TARGET_RSS,
            note=f"largest process {max(r.peak_rss_mb for r in runs[f'fedgen {many}']):.0f} MB",
        ),
        row(f"fedgen validate per added federation ({n} vs 1, median wall)", (med(f"fedgen {many}") - med("fedgen 1")) / max(n - 1, 1), "s"),
    ]
    if args.compare_with:
        rows += [
            row(f"{source.name}: fedgen validate, {n} federations", med(f"compared {many}"), "s"),
            row(f"{source.name}: / hand toolchain, {n} federations", paired(f"compared {many}", f"hand {many}", "/"), "x", TARGET_MANY),
            row(f"{source.name}: fedgen validate, 1 federation", med("compared 1"), "s"),
            row(f"{source.name}: - hand toolchain, 1 federation", paired("compared 1", "hand 1", "-"), "s", TARGET_ONE),
            row(f"{source.name}: peak RSS, {n} federations (process tree)", tree_rss(f"compared {many}"), "MB", TARGET_RSS),
            row(f"speed-up over {source.name}, {n} federations", paired(f"compared {many}", f"fedgen {many}", "/"), "x"),
            row(f"speed-up over {source.name}, 1 federation", paired("compared 1", "fedgen 1", "/"), "x"),
        ]
    machine = benchlib.machine()
    title = (
        f"fedgen validate of {n} federations in one repository vs the hand toolchain ({args.repeat} interleaved rounds, "
        f"{machine['cpus']} CPUs, load {load_before[0]:.2f} before / {load_after[0]:.2f} after)"
    )
    benchlib.print_table(title, rows)
    details: dict[str, Any] = {
        name: [{"seconds": r.seconds, "cpu_seconds": r.cpu_seconds, "peak_rss_mb": r.peak_rss_mb, "tree_peak_rss_mb": r.tree_peak_rss_mb} for r in rs]
        for name, rs in runs.items()
    }
    details["load"] = {"before": load_before, "after": load_after}
    parameters = {"federations": n, "sites": args.sites, "repeat": args.repeat, "bytecode": args.bytecode, "compare_with": str(args.compare_with or "")}
    path = benchlib.write_results("many", rows, parameters=parameters, details=details)
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
