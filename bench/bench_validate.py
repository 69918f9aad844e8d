"""Benchmark `fedgen validate` against bare kubeconform on the same built manifests.

    .venv/bin/python bench/bench_validate.py [--repeat 5] [--spec examples/federation.yaml] [--keep DIR]

Renders the spec into a scratch repo, builds every sync root (and bootstrap folder) once with
`kubectl kustomize --load-restrictor=LoadRestrictionsNone` into one file, then runs side by side, --repeat
times, interleaved, each a fresh process:
  (a) bare kubeconform on that file, with the flags and offline schemas fedgen uses;
  (b) the bare pipeline a shell script would run: kubectl kustomize of each folder, then kubeconform;
  (c) `fedgen validate --repo <scratch> --format json` (everything: file scan, builds, kubeconform, all rules).
Prints medians and the ratios (c)/(a) and (c)/(b), an in-process phase breakdown of one validation, and writes
bench/results/validate.json (see bench/benchlib.py).
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


def kubeconform_argv(binary: Path, schemas: Path, version: str, manifest: Path) -> list[str]:
    return [
        str(binary), "-strict", "-output", "json", "-summary",
        "-schema-location", f"{schemas}/crds/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
        "-schema-location", f"{schemas}/kubernetes/v{version}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
        str(manifest),
    ]


def build_folders(repo: Path) -> list[str]:
    out = []
    for cluster in sorted((repo / "clusters").iterdir()):
        for folder in (cluster, cluster / "bootstrap"):
            if (folder / "kustomization.yaml").is_file():
                out.append(folder.relative_to(repo).as_posix())
    return out


def phases(repo: Path, version: str) -> dict[str, float]:
    """One in-process validation, timed phase by phase (imports excluded: the process is warm)."""
    from fedgen.validate import build
    from fedgen.validate.engine import evaluate
    from fedgen.validate.rules import REGISTRY

    timer = benchlib.Timer()
    start = time.perf_counter()
    files = build.read_files(repo)
    timer.add("read and parse repo files", time.perf_counter() - start)
    start = time.perf_counter()
    ledgers = build.read_ledgers(repo)
    specs = {ledger.spec: build.read_spec(repo, ledger.spec) for ledger in ledgers if ledger.spec}
    timer.add("ledgers and spec", time.perf_counter() - start)
    start = time.perf_counter()
    roots, folders = build.build_roots(repo, files, specs, ledgers)
    timer.add("kubectl kustomize (parallel) and source mapping", time.perf_counter() - start)
    objects = [o for r in roots for o in r.objects]
    build._VERDICTS.clear()  # measure a real kubeconform run, not the per-process verdict cache
    start = time.perf_counter()
    schema = build.check_schemas(objects, version)
    timer.add("kubeconform (through fedgen.validate.kubeconform)", time.perf_counter() - start)
    model = build.Model(files=files, roots=roots, ledgers=ledgers, specs=specs, schema=schema, kubernetes_version=version, sync_dirs=folders)
    start = time.perf_counter()
    evaluate(model, REGISTRY)
    timer.add(f"{len(REGISTRY)} rules", time.perf_counter() - start)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spec", type=Path, default=REPO_ROOT / "examples" / "federation.yaml")
    parser.add_argument("--keep", type=Path, help="render into this folder and keep it")
    args = parser.parse_args()

    from fedgen.tools import find_tool
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, DEFAULT_SCHEMAS_DIR, find_kubeconform

    kubectl, kubeconform = find_tool("kubectl"), find_kubeconform()
    version = DEFAULT_KUBERNETES_VERSION
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="fedgen-bench-validate-"))
    repo = scratch / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(args.spec.resolve().parent, repo / "spec")
    spec = repo / "spec" / args.spec.name
    benchlib.run([str(BIN_DIR / "fedgen"), "render", str(spec), "--repo", str(repo)]).check()

    folders = build_folders(repo)
    manifest = scratch / "built.yaml"
    built = [benchlib.run([str(kubectl), "kustomize", "--load-restrictor=LoadRestrictionsNone", f], cwd=repo).check().stdout for f in folders]
    manifest.write_text("---\n".join(built))
    objects = sum(1 for line in manifest.read_text().splitlines() if line.startswith("kind:"))

    bare_argv = kubeconform_argv(kubeconform, DEFAULT_SCHEMAS_DIR, version, manifest)
    pipeline = scratch / "pipeline.sh"
    pipeline.write_text(
        "set -e\ncd " + str(repo) + "\nout=$(mktemp)\n"
        + "".join(f"{kubectl} kustomize --load-restrictor=LoadRestrictionsNone {f} >> $out\necho --- >> $out\n" for f in folders)
        + " ".join(bare_argv[:-1]) + " $out > /dev/null || [ $? -eq 1 ]\nrm -f $out\n"
    )
    validate_argv = [str(BIN_DIR / "fedgen"), "validate", "--repo", str(repo), "--format", "json"]

    times: dict[str, list[float]] = {"kubeconform": [], "pipeline": [], "fedgen": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}
    exit_codes = set()
    for _ in range(args.repeat):
        for name, argv in (("kubeconform", bare_argv), ("pipeline", ["bash", str(pipeline)]), ("fedgen", validate_argv)):
            result = benchlib.run(argv)
            exit_codes.add((name, result.returncode))
            if result.returncode not in (0, 1):  # 1 = findings (invalid objects): still a full run
                raise SystemExit(f"{name} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
            times[name].append(result.seconds)
            cpu[name].append(result.cpu_seconds)

    med = {k: statistics.median(v) for k, v in times.items()}
    rows: list[Row] = [
        row("objects validated", objects, note=f"{len(folders)} folders built: {', '.join(folders)}"),
        row("bare kubeconform (median wall)", med["kubeconform"], "s", note=f"min {min(times['kubeconform']):.3f} s"),
        row("kubectl kustomize + kubeconform (median wall)", med["pipeline"], "s", note=f"min {min(times['pipeline']):.3f} s"),
        row("fedgen validate (median wall)", med["fedgen"], "s", target="<= 3", note=f"min {min(times['fedgen']):.3f} s; exit codes {sorted(exit_codes)}"),
        row("fedgen validate / bare kubeconform", med["fedgen"] / med["kubeconform"], "x"),
        row("fedgen validate / kustomize + kubeconform", med["fedgen"] / med["pipeline"], "x"),
        row("fedgen validate CPU (median)", statistics.median(cpu["fedgen"]), "s"),
    ]
    breakdown = phases(repo, version)
    benchlib.print_table(f"fedgen validate vs kubeconform ({args.repeat} interleaved runs, Kubernetes {version})", rows)
    benchlib.print_table(
        "one in-process validation, by phase",
        [row(label, seconds, "s") for label, seconds in breakdown.items()],
    )
    details: dict[str, Any] = {"seconds": times, "cpu_seconds": cpu, "phases": breakdown, "folders": folders}
    path = benchlib.write_results("validate", rows, parameters={"repeat": args.repeat, "spec": str(args.spec), "kubernetes_version": version}, details=details)
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
