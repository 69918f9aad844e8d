"""What the progress bar (fedgen.cli.progress) costs a render: its reports timed in-process.

Whole-command pairs cannot show it: a cold render's time varies by several percent from run to run with RSA key
generation (the search for primes), far more than the bar could cost. So this times the bar itself, as a render
calls it: one report per issued certificate, to a terminal-like stream (/dev/null, written and flushed as a
terminal would be), in two cases:
- as rendered: the real clock, redrawn at most every 0.1 s (the first and the last count always);
- worst case: a clock that moves a second between reports, so every report redraws.
The figures are set beside the cold render they would ride on (bench_render.py's latest result when there is
one): the bar's share of it is the figure that matters.

    .venv/bin/python bench/bench_progress.py [--certificates 502] [--repeat 200]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402 - bench/ is not a package

from fedgen.cli.progress import ProgressBar  # noqa: E402


def per_render(certificates: int, repeat: int, *, every_report_draws: bool) -> float:
    """Seconds the bar takes over one render that issues `certificates` (mean of `repeat` renders)."""
    with open(os.devnull, "w") as stream:
        ticks = itertools.count()
        clock = (lambda: float(next(ticks))) if every_report_draws else time.monotonic
        start = time.perf_counter()
        for _ in range(repeat):
            bar = ProgressBar("issuing certificates", stream, clock)
            for done in range(certificates + 1):
                bar(done, certificates)
            bar.close()
        return (time.perf_counter() - start) / repeat


def cold_render_seconds() -> float | None:
    """The cold render of bench_render.py's latest result, if any."""
    path = benchlib.RESULTS_DIR / "render.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["rows"]
    return next((r["value"] for r in rows if r["metric"] == "fedgen render, cold"), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=502)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    as_rendered = per_render(args.certificates, args.repeat, every_report_draws=False)
    worst = per_render(args.certificates, args.repeat, every_report_draws=True)
    cold = cold_render_seconds()
    share = f"{worst / cold:.5%} of the cold render ({cold:.1f} s, bench_render.py)" if cold else "run bench_render.py for the share"
    rows = [
        benchlib.row(f"progress bar, {args.certificates} reports, as rendered", as_rendered * 1000, "ms"),
        benchlib.row(f"progress bar, {args.certificates} reports, every one redrawn", worst * 1000, "ms", note=share),
    ]
    benchlib.print_table(f"progress bar benchmark: {args.certificates} certificates", rows)
    benchlib.write_results("progress", rows, parameters=vars(args), details={"cold_render_seconds": cold})


if __name__ == "__main__":
    main()
