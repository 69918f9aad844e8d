"""Print every benchmark's latest results (bench/results/<name>.json) as one table, targets alongside.

    .venv/bin/python bench/report.py [--markdown]

Each benchmark (bench_render.py, bench_validate.py, the e2e timings) writes its own results file in the format
described in bench/benchlib.py; this only reads them. --markdown prints a table for the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    latest = sorted(p for p in benchlib.RESULTS_DIR.glob("*.json") if "-" not in p.stem)
    if not latest:
        print(f"no results in {benchlib.RESULTS_DIR}: run bench/bench_*.py first")
        return 1
    for path in latest:
        doc = json.loads(path.read_text())
        rows = [benchlib.Row(**r) for r in doc["rows"]]
        machine = doc.get("machine", {})
        title = f"{doc['benchmark']} ({doc['when']}, {machine.get('cpus', '?')} CPUs, load {machine.get('load', ['?'])[0]})"
        if args.markdown:
            print(f"\n**{title}**\n")
            print("| metric | value | target | status | note |")
            print("| --- | --- | --- | --- | --- |")
            for r in rows:
                status = "" if r.ok is None else ("ok" if r.ok else "**missed**")
                print(f"| {r.metric} | {benchlib.fmt(r.value)} {r.unit} | {r.target or ''} | {status} | {r.note} |")
        else:
            benchlib.print_table(title, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
