"""Benchmark `fedgen validate` against bare kubeconform on the same built manifests.

    .venv/bin/python bench/bench_validate.py [--repeat 7] [--spec examples/federation.yaml | --repo DIR]
                                             [--compare-with SRC] [--bytecode cached|env] [--keep DIR]

Renders the spec into a scratch repo (or takes --repo as it is), builds every sync root (and bootstrap folder)
once with `kubectl kustomize --load-restrictor=LoadRestrictionsNone` into one file, then runs side by side,
--repeat times, interleaved, each a fresh process:
  (a) bare kubeconform on that file, with the flags and offline schemas fedgen uses;
  (b) the bare pipeline a shell script would run: kubectl kustomize of each folder, then kubeconform;
  (c) `fedgen validate --repo <repo> --format json` (everything: file scan, builds, kubeconform, all rules);
  (d) with --compare-with SRC: the same with the fedgen found in SRC/generator (another version of the
      source, e.g. `mkdir /tmp/old && git archive HEAD generator | tar -x -C /tmp/old && ln -s "$PWD/schemas"
      "$PWD/.tools" /tmp/old/`), so a before/after is measured in one run, under the same load.
Prints medians and the ratios to (a) and (b), an in-process phase breakdown of one validation (the phases
of fedgen's own pipeline, which runs kubectl and kubeconform in the background meanwhile), and writes
bench/results/validate.json (see bench/benchlib.py).

Python bytecode: --bytecode cached (the default) lets every fedgen process read and write compiled bytecode
under <scratch>/pycache (PYTHONDONTWRITEBYTECODE dropped, PYTHONPYCACHEPREFIX set, one unmeasured warm-up
run each), as on any machine where the package is installed; --bytecode env keeps the environment as it is
(with PYTHONDONTWRITEBYTECODE=1 every run compiles fedgen's sources again, ~0.3 s).
"""

from __future__ import annotations

import argparse
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

TARGET_SECONDS = "<= 10"
TARGET_RATIO = "<= 1.5"


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, label: str, seconds: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds


def phases(repo: Path, version: str) -> dict[str, float]:
    """One in-process validation, timed phase by phase as `fedgen validate` runs them (imports excluded: the
    process is warm). kubectl kustomize and kubeconform run in the background during the later phases, so
    each phase's time is what the Python work and the waiting for them took together."""
    import gc

    from fedgen.validate.collect import schemas
    from fedgen.validate.collect.collector import ModelCollector
    from fedgen.validate.engine import evaluate
    from fedgen.validate.rules import REGISTRY

    timer = _Timer()
    schemas._VERDICTS.clear()  # measure a real kubeconform run, not the per-process verdict cache
    gc.disable()  # as fedgen validate does
    try:
        start = time.perf_counter()
        with ModelCollector(repo, kubernetes_version=version) as collector:
            timer.add("list files, read ledgers, start kubectl kustomize", time.perf_counter() - start)
            start = time.perf_counter()
            pending = collector.finish()
            timer.add("read and parse files, load specs, enrollment, re-render; wait for kustomize", time.perf_counter() - start)
            start = time.perf_counter()
            model = pending.complete()
            timer.add("wait for kubeconform (through fedgen.validate.kubeconform)", time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(model, REGISTRY)
        timer.add(f"{len(REGISTRY)} rules", time.perf_counter() - start)
    finally:
        gc.enable()
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "examples" / "federation.yaml")
    parser.add_argument("--repo", type=Path, help="validate this rendered repo as it is instead of rendering --spec")
    parser.add_argument("--compare-with", type=Path, metavar="SRC", help="also run the fedgen in SRC/generator (another version)")
    parser.add_argument("--bytecode", choices=("cached", "env"), default="cached")
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    args = parser.parse_args()

    from fedgen.executables import find_tool
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, DEFAULT_SCHEMAS_DIR, find_kubeconform

    kubectl, kubeconform = find_tool("kubectl"), find_kubeconform()
    version = DEFAULT_KUBERNETES_VERSION
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="fedgen-bench-validate-"))
    scratch.mkdir(parents=True, exist_ok=True)
    if args.repo:
        repo = args.repo.resolve()
    else:
        repo = scratch / "repo"
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(args.spec.resolve().parent, repo / "spec")
        spec = repo / "spec" / args.spec.name
        benchlib.run([str(BIN_DIR / "fedgen"), "render", str(spec), "--repo", str(repo)]).check()

    folders = benchlib.build_folders(repo)
    manifest = scratch / "built.yaml"
    built = [benchlib.run([str(kubectl), "kustomize", "--load-restrictor=LoadRestrictionsNone", f], cwd=repo).check().stdout for f in folders]
    manifest.write_text("---\n".join(built))
    objects = sum(1 for line in manifest.read_text().splitlines() if line.startswith("kind:"))

    bare_argv = benchlib.kubeconform_argv(kubeconform, DEFAULT_SCHEMAS_DIR, version, manifest)
    pipeline = scratch / "pipeline.sh"
    pipeline.write_text(benchlib.hand_pipeline(repo, kubectl, kubeconform, DEFAULT_SCHEMAS_DIR, version))
    validate_argv = [sys.executable, "-m", "fedgen", "validate", "--repo", str(repo), "--format", "json"]
    runs: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "kubeconform": (bare_argv, None),
        "pipeline": (["bash", str(pipeline)], None),
        "fedgen": (validate_argv, benchlib.python_env(args.bytecode, scratch)),
    }
    if args.compare_with:
        source = args.compare_with.resolve()
        if not any((source / "generator" / "fedgen" / cli).is_file() for cli in ("cli.py", "cli/__init__.py")):
            raise SystemExit(f"--compare-with {source}: no fedgen command line in generator/fedgen there")
        runs["compared"] = (validate_argv, benchlib.python_env(args.bytecode, scratch / "compared", source / "generator"))

    for name in ("fedgen", "compared"):  # warm-up: bytecode written, files in the page cache
        if name in runs:
            benchlib.run(runs[name][0], env=runs[name][1])

    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    rss: dict[str, list[float]] = {k: [] for k in runs}
    exit_codes = set()
    for _ in range(args.repeat):
        for name, (argv, env) in runs.items():
            result = benchlib.run(argv, env=env)
            exit_codes.add((name, result.returncode))
            if result.returncode not in (0, 1):  # 1 = findings (invalid objects): still a full run
                raise SystemExit(f"{name} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
            times[name].append(result.seconds)
            cpu[name].append(result.cpu_seconds)
            rss[name].append(result.tree_peak_rss_mb or result.peak_rss_mb)

    med = {k: statistics.median(v) for k, v in times.items()}
    label = f"fedgen validate ({'this source' if args.compare_with else 'median wall'})"
    rows: list[Row] = [
        row("objects validated", objects, note=f"{len(folders)} folders built: {', '.join(folders)}"),
        row("bare kubeconform (median wall)", med["kubeconform"], "s", note=f"min {min(times['kubeconform']):.3f} s"),
        row("kubectl kustomize + kubeconform (median wall)", med["pipeline"], "s", note=f"min {min(times['pipeline']):.3f} s"),
        row(label, med["fedgen"], "s", target=TARGET_SECONDS, note=f"min {min(times['fedgen']):.3f} s; exit codes {sorted(exit_codes)}"),
        row("fedgen validate / bare kubeconform", med["fedgen"] / med["kubeconform"], "x", target=TARGET_RATIO),
        row("fedgen validate / kustomize + kubeconform", med["fedgen"] / med["pipeline"], "x"),
        row("fedgen validate CPU (median)", statistics.median(cpu["fedgen"]), "s"),
        row("fedgen validate peak RSS (median)", statistics.median(rss["fedgen"]), "MB", target="<= 300"),
    ]
    if "compared" in med:
        rows += [
            row(f"fedgen validate ({source})", med["compared"], "s", target=TARGET_SECONDS, note=f"min {min(times['compared']):.3f} s"),
            row(f"  {source.name} / bare kubeconform", med["compared"] / med["kubeconform"], "x", target=TARGET_RATIO),
            row(f"  {source.name} / kustomize + kubeconform", med["compared"] / med["pipeline"], "x"),
            row(f"  {source.name} CPU (median)", statistics.median(cpu["compared"]), "s"),
            row(f"  {source.name} peak RSS (median)", statistics.median(rss["compared"]), "MB", target="<= 300"),
            row(f"speed-up of this source over {source.name}", med["compared"] / med["fedgen"], "x"),
        ]
    breakdown = phases(repo, version)
    benchlib.print_table(f"fedgen validate vs kubeconform ({args.repeat} interleaved runs, Kubernetes {version}, bytecode {args.bytecode}, {repo})", rows)
    benchlib.print_table(
        "one in-process validation, by phase (kubectl kustomize and kubeconform run in the background)",
        [row(label, seconds, "s") for label, seconds in breakdown.items()],
    )
    details: dict[str, Any] = {"seconds": times, "cpu_seconds": cpu, "peak_rss_mb": rss, "phases": breakdown, "folders": folders}
    parameters = {
        "repeat": args.repeat,
        "spec": str(args.spec),
        "repo": str(args.repo or ""),
        "kubernetes_version": version,
        "bytecode": args.bytecode,
        "compare_with": str(args.compare_with or ""),
    }
    path = benchlib.write_results("validate", rows, parameters=parameters, details=details)
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
