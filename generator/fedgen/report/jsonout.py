"""--format json: {"findings": [...], "summary": {...}} with sorted keys; nothing else at the top level."""

from __future__ import annotations

import json
from typing import Any

from fedgen.validate.engine import Report
from fedgen.validate.finding import Finding


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "slug": f.slug,
        "severity": f.severity,
        "path": f.path,
        "line": f.line,
        "object": f.object,
        "message": f.message,
        "remediation": f.remediation,
        "pointer": f.pointer,
        "fingerprint": f.fingerprint,
    }


def render_json(report: Report, **_: Any) -> str:
    doc = {
        "findings": [finding_dict(f) for f in report.findings],
        "summary": {
            **report.summary(),
            "suppressedFindings": [{**finding_dict(s.finding), "reason": s.reason} for s in report.suppressed],
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
