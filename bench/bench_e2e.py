"""Run the end-to-end federation (tests/e2e/flow.py) on demand and print its phase timings.

    sudo .venv/bin/python bench/bench_e2e.py [--exposure gateway|loadbalancer|both] [--repeat N] [--negative] [--keep]

Each run renders a spec with `fedgen render`, builds the sync root with `kubectl kustomize`, starts the server
from the built manifests (private mount namespace, read-only root, uid 10000, its own network namespace),
bundles two sites and the admin with `fedgen client-bundle`, enrolls a third site by request (its key never
leaves its folder: `fedgen enroll kit`, `nvflare cert request`, `fedgen enroll approve`, `nvflare package`),
runs each site (bundled: its untouched run.sh; enrolled: its README's command) in its own network namespace, logs in with the FLARE API, runs a 2-round numpy scatter-and-gather job to
FINISHED:COMPLETED, checks the aggregated model and shuts everything down. --negative adds the foreign-CA
twin (a site from another federation's CA must not register). Needs root, `ip`, `unshare`, `kubectl`.
Prints a table (median over --repeat) and writes bench/results/e2e.json (see bench/benchlib.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import benchlib  # noqa: E402

from fedgen.seal.certificate import generate_development_keypair  # noqa: E402
from tests.e2e import flow, results  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exposure", choices=["gateway", "loadbalancer", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--negative", action="store_true", help="also run the foreign-CA negative twin")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (logs, kits, volumes)")
    args = parser.parse_args()
    exposures = ["gateway", "loadbalancer"] if args.exposure == "both" else [args.exposure]
    key, cert = generate_development_keypair()
    runs: dict[str, list[dict[str, float]]] = {e: [] for e in exposures}
    details: dict[str, object] = {}
    for i in range(args.repeat):
        for exposure in exposures:
            work = Path(tempfile.mkdtemp(prefix=f"fedgen-e2e-{exposure}-"))
            try:
                outcome = flow.main_flow(work, (key, cert), exposure=exposure, log=lambda m: print(f"  {m}", flush=True))
            finally:
                if args.keep:
                    print(f"  kept {work}")
                else:
                    shutil.rmtree(work, ignore_errors=True)
            print(f"{exposure} run {i + 1}: {outcome.timings['total']:.1f} s", flush=True)
            runs[exposure].append(outcome.timings)
            details[exposure] = outcome.facts
    if args.negative:
        work = Path(tempfile.mkdtemp(prefix="fedgen-e2e-foreign-"))
        start = time.monotonic()
        try:
            facts = flow.foreign_ca_flow(work, (key, cert), log=print)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        facts["seconds"] = time.monotonic() - start
        details["foreign_ca"] = facts
        print(f"foreign-CA twin: never registered in {facts['watched_seconds']} s; {facts['seconds']:.1f} s in all")
    median = {e: {k: statistics.median(t[k] for t in ts) for k in ts[0]} for e, ts in runs.items() if ts}
    print(f"\nend-to-end federation, median of {args.repeat} run(s) per exposure")
    print(results.table(median))
    rows = results.rows(median)
    benchlib.print_table("e2e", rows)
    path = results.write(median, {**details, "repeat": args.repeat, "runs": runs}, timestamped=True)
    print(f"\nwrote {path}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
