"""`fedgen status` output: a short table (one line per check, then each problem with what to do) or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fedgen.status imports the cluster checks: not needed to format their report
    from fedgen.status.model import StatusReport


def to_json(report: StatusReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"


def to_text(report: StatusReport) -> str:
    rows = [("CLUSTER", "CHECK", "STATE", "DETAIL")]
    for cluster in report.clusters:
        for reason in cluster.unreachable:
            rows.append((cluster.name, "connection", "DOWN", reason))
        for check in cluster.checks:
            rows.append((cluster.name, check.name, "ok" if check.ok else "FAIL", check.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(value.ljust(widths[i]) if i < 3 else value for i, value in enumerate(row)).rstrip() for row in rows]
    problems = report.problems
    if problems:
        lines.append("")
        lines.append("problems:")
        for p in problems:
            lines.append(f"- {p['cluster']} {p['check']}: {p['message']}")
            lines.append(f"  fix: {p['fix']}")
    lines.append("")
    if report.ready:
        lines.append(f"ready: {report.federation} runs HEAD {report.head[:12]}")
    else:
        lines.append(f"not ready: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    return "\n".join(lines) + "\n"


STATUS_FORMATS = {"text": to_text, "json": to_json}
