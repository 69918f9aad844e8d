"""Text the commands print about what fedgen.api returned: pure functions of its results, no printing.
Imports nothing of fedgen.cli (the command modules import it)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedgen.api import CertificateReport, RenderResult
    from fedgen.state import Backup
    from fedgen.validate.rule import Rule
    from fedgen.write import Plan


def render_lines(result: RenderResult) -> list[str]:
    """Notes, warnings and issued certificates of a render (for stderr)."""
    lines = [f"note: {note}" for note in result.notes]
    lines += [f"warning: {warning}" for warning in result.warnings]
    if result.issued:
        lines.append(f"issued certificates: {', '.join(result.issued)}")
    return lines


def change_summary(plan: Plan) -> str:
    """`N created, N updated, N deleted, N unchanged`."""
    counts = {a: sum(1 for c in plan.changes if c.action == a) for a in ("create", "update", "delete")}
    return f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, {len(plan.unchanged)} unchanged"


def change_list(plan: Plan) -> list[str]:
    """One `ACTION<tab>PATH` line per change (for stdout)."""
    return [f"{change.action}\t{change.path}" for change in plan.changes]


def redistribution(result: RenderResult, spec: Path, *, new_root: bool) -> list[str]:
    """Who needs something new after certificates were re-issued: bundles, the server (rolled by the GitOps
    engine the spec names), and after a new root CA the sites that enroll by request."""
    fed = result.federation
    server = fed.server.name
    quoted = shlex.quote(str(spec))
    lines = []
    to_hand_out = [n for n in result.issued if n != server]
    if to_hand_out:
        lines.append(f"redistribute bundles: {', '.join(to_hand_out)} (fedgen client-bundle NAME --spec {quoted})")
    if server in result.issued:
        lines.append(f"the server's kit changed: commit the rendered files so {fed.gitops.engine_name} rolls the server")
    enrolled = sorted(s.name for s in fed.sites if s.enrollment == "request")
    if enrolled and new_root:
        lines.append(f"approve again under the new root CA: {', '.join(enrolled)} (fedgen enroll approve REQUEST --spec {quoted})")
    return lines


def backup_line(backup: Backup | None) -> list[str]:
    """Where the state was copied before an irreversible step (nothing when no copy was due)."""
    if backup is None:
        return []
    if backup.copy is None:
        return [f"note: state {backup.state} holds no document yet: nothing to back up"]
    return [f"backed up the state {backup.state} to {backup.copy}"]


def certificates_text(report: CertificateReport) -> str:
    width = max(len(c.name) for c in report.certificates)
    lines = []
    for c in report.certificates:
        expiry = f"{c.not_after:%Y-%m-%d} ({c.days_left} days)" if c.not_after else "-"
        lines.append(f"{c.name:<{width}}  {c.kind:<6}  {c.status:<10}  {expiry}")
    return "\n".join(lines) + "\n"


def certificates_json(report: CertificateReport) -> str:
    rows = [
        {"name": c.name, "kind": c.kind, "status": c.status, "not_after": c.not_after.isoformat() if c.not_after else None, "days_left": c.days_left, "sha256": c.sha256}
        for c in report.certificates
    ]
    return json.dumps({"certificates": rows}, indent=2) + "\n"


def rules_table(rules: Sequence[Rule], *, retired: Sequence[str] = ()) -> str:
    """The rules as a Markdown table (`fedgen validate --list-rules`), retired IDs among them, by ID."""
    from fedgen.validate.rule import FAMILIES

    lines = ["| id | slug | severity | family | checks |", "| --- | --- | --- | --- | --- |"]
    rows = {r.id: f"| {r.id} | {r.slug} | {r.severity} | {r.family} | {r.summary} |" for r in rules}
    rows |= {i: f"| {i} | retired | - | {FAMILIES[i[2]]} | Nothing: a removed rule; its ID is never reused. |" for i in retired}
    lines += [rows[rule_id] for rule_id in sorted(rows)]
    return "\n".join(lines) + "\n"
