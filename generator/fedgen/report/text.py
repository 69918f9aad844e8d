"""Human text: findings grouped by file, one block each, a summary line; colour only when asked (a TTY)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import click

from fedgen.validate.engine import Report
from fedgen.validate.finding import ERROR, Finding

_COLOURS = {ERROR: "red", "warning": "yellow"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _style(text: str, colour: bool, **kw: Any) -> str:
    return click.style(text, **kw) if colour else text


def _finding(f: Finding, colour: bool) -> list[str]:
    where = f"{f.line}" if f.line else "-"
    severity = _style(f"{f.severity:<7}", colour, fg=_COLOURS.get(f.severity), bold=f.severity == ERROR)
    head = f"  {where:>4}  {severity}  {_style(f.rule, colour, bold=True)} {f.slug}"
    if f.object:
        head += f"  {_style(f.object, colour, fg='cyan')}"
    return [head, f"        {f.message}", _style(f"        fix: {f.remediation}", colour, dim=True)]


def summary_line(report: Report) -> str:
    scope = f"{_plural(report.objects, 'object')} in {_plural(len(report.sync_roots), 'sync root')}, Kubernetes {report.kubernetes_version}"
    suppressed = f", {len(report.suppressed)} allowlisted" if report.suppressed else ""
    if not report.findings:
        return f"no findings ({scope}{suppressed})"
    return f"{_plural(report.errors, 'error')}, {_plural(report.warnings, 'warning')}{suppressed} ({scope})"


def render_text(report: Report, *, colour: bool = False, **_: Any) -> str:
    by_path: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        by_path[f.path].append(f)
    lines: list[str] = []
    for path in sorted(by_path):
        lines.append(_style(path, colour, bold=True, underline=True))
        for f in by_path[path]:
            lines.extend(_finding(f, colour))
        lines.append("")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"
