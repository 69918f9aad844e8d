"""Text the commands print about what fedgen.api returned: pure functions of its results, no printing.
Imports nothing of fedgen.cli but who_acts (the command modules import it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedgen.cli.who_acts import Context, issued_line, offboarding_lines, root_rotation_json, still_valid_json

if TYPE_CHECKING:
    from fedgen.api import CertificateReport, RenderResult
    from fedgen.state import Backup
    from fedgen.validate.rule import Rule
    from fedgen.write import Plan


def render_lines(result: RenderResult) -> list[str]:
    """Notes, warnings and issued certificates of a render (for stderr)."""
    lines = [f"note: {note}" for note in result.notes]
    lines += [f"warning: {warning}" for warning in result.warnings]
    return lines + issued_line(result.issued)


def change_summary(plan: Plan) -> str:
    """`N created, N updated, N deleted, N unchanged`."""
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in ("create", "update", "delete")}
    return f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, {len(plan.unchanged)} unchanged"


def change_list(plan: Plan) -> list[str]:
    """One `ACTION<tab>PATH` line per change (for stdout)."""
    return [f"{change.action}\t{change.path}" for change in plan.changes]


def backup_line(backup: Backup | None) -> list[str]:
    """Where the state was copied before an irreversible step (nothing when no copy was due)."""
    if backup is None:
        return []
    if backup.copy is None:
        return [f"note: state {backup.state} holds no document yet: nothing to back up"]
    return [f"backed up the state {backup.state} to {backup.copy}"]


def certificates_text(report: CertificateReport, ctx: Context) -> str:
    width = max(len(c.name) for c in report.certificates)
    lines = []
    for c in report.certificates:
        expiry = f"{c.not_after:%Y-%m-%d} ({c.days_left} days)" if c.not_after else "-"
        lines.append(f"{c.name:<{width}}  {c.kind:<6}  {c.status:<10}  {expiry}")
    if report.still_valid:
        lines += ["", *offboarding_lines(report.still_valid, report.root_rotation, ctx)]
    return "\n".join(lines) + "\n"


def certificates_json(report: CertificateReport, ctx: Context) -> str:
    rows = [
        {
            "name": c.name,
            "kind": c.kind,
            "status": c.status,
            "not_after": c.not_after.isoformat() if c.not_after else None,
            "days_left": c.days_left,
            "sha256": c.sha256,
        }
        for c in report.certificates
    ]
    document = {"certificates": rows, "still_valid": still_valid_json(report.still_valid), "root_rotation": root_rotation_json(report.root_rotation, ctx)}
    return json.dumps(document, indent=2) + "\n"


def rules_table(rules: Sequence[Rule], *, retired: Sequence[str] = ()) -> str:
    """The rules as a Markdown table (`fedgen validate --list-rules`), retired IDs among them, by ID."""
    from fedgen.validate.rule import FAMILIES

    lines = ["| id | slug | severity | family | checks |", "| --- | --- | --- | --- | --- |"]
    rows = {r.id: f"| {r.id} | {r.slug} | {r.severity} | {r.family} | {r.summary} |" for r in rules}
    rows |= {i: f"| {i} | retired | - | {FAMILIES[i[2]]} | Nothing: a removed rule; its ID is never reused. |" for i in retired}
    lines += [rows[rule_id] for rule_id in sorted(rows)]
    return "\n".join(lines) + "\n"
