"""--format sarif: SARIF 2.1.0 for code-scanning annotations.

Deterministic: no timestamps, no absolute paths (artifact URIs are repo-relative against %SRCROOT%), every
registered rule described once (id, slug, summary, remediation, default level), results carry
partialFingerprints from the finding's fingerprint; allowlisted findings appear with a suppression.
"""

from __future__ import annotations

import json
from typing import Any

from fedgen import __version__
from fedgen.validate.engine import Report
from fedgen.validate.finding import ERROR, Finding

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "fedgen/v1"
SRCROOT = "%SRCROOT%"


def _level(severity: str) -> str:
    return "error" if severity == ERROR else "warning"


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.slug,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": f"{rule.summary} ({rule.family})"},
        "help": {"text": rule.remediation},
        "defaultConfiguration": {"level": _level(rule.severity)},
        "properties": {"tags": [rule.family]},
    }


def _result(f: Finding, index: dict[str, int], suppression: str | None = None) -> dict[str, Any]:
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": f.path or ".", "uriBaseId": SRCROOT}},
    }
    if f.line:
        location["physicalLocation"]["region"] = {"startLine": f.line}
    if f.object:
        location["logicalLocations"] = [{"fullyQualifiedName": f.object, "kind": "resource"}]
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "level": _level(f.severity),
        "message": {"text": f"{f.message} Fix: {f.remediation}"},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
    }
    if f.rule in index:
        result["ruleIndex"] = index[f.rule]
    if suppression is not None:
        result["suppressions"] = [{"kind": "external", "justification": suppression}]
    return result


def render_sarif(report: Report, **_: Any) -> str:
    rules = sorted(report.rules, key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    results = [_result(f, index) for f in report.findings]
    results += [_result(s.finding, index, s.reason) for s in report.suppressed]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "fedgen",
                        "version": __version__,
                        "rules": [_rule(r) for r in rules],
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"description": {"text": "The root of the validated GitOps repository."}}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
