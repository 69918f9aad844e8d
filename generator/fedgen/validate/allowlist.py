"""The allowlist: .fedgen/allowlist.yaml silences findings by rule and object, each with a reason.

    allow:
      - rule: FG709                                  # rule id or slug
        object: Service/istio-ingress/nvflare-fl-1   # Kind/namespace/name (Kind/name if cluster-scoped)
        path: clusters/acp-dev/istio-ingress/fl-1/service.yaml   # optional: the finding's file
        reason: sites connect from changing addresses; NVFlare's mutual TLS authenticates them

An error can be silenced only by an entry naming its one object exactly (and its file exactly, when path is
given); globs (*, ?, [...]) in object or path match warnings only. A pull request can add entries, so the PR
check should read the allowlist from the base branch (fedgen validate --allowlist). An entry without a
reason, with an unknown rule, or a file that is not this shape is invalid input (exit 2); an entry that
silences nothing is an error finding (FG108).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from fedgen.errors import InputError
from fedgen.validate.finding import ERROR, Finding, Suppressed
from fedgen.validate.rule import Registry
from fedgen.validate.yamlsource import parse_yaml

ALLOWLIST_PATH = ".fedgen/allowlist.yaml"
FIELDS = ("rule", "object", "path", "reason")
GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class Entry:
    rule: str
    object: str
    path: str | None
    reason: str
    line: int

    @property
    def is_glob(self) -> bool:
        return any(c in field for field in (self.object, self.path or "") for c in GLOB_CHARACTERS)

    def matches(self, finding: Finding, slug: str) -> bool:
        if self.rule not in (finding.rule, slug) or finding.object is None:
            return False
        if finding.severity == ERROR:  # one exact object (and file): a glob never silences an error
            return finding.object == self.object and self.path in (None, finding.path)
        if not fnmatchcase(finding.object, self.object):
            return False
        return self.path is None or fnmatchcase(finding.path, self.path)


def parse_allowlist(text: str, *, origin: str, registry: Registry) -> tuple[Entry, ...]:
    parsed = parse_yaml(origin, text)
    if parsed.error:
        raise InputError(f"{origin}:{parsed.error_line or 1}: {parsed.error}")
    if not parsed.docs:
        return ()
    doc = parsed.docs[0]
    if len(parsed.docs) > 1 or not isinstance(doc.data, dict) or set(doc.data) - {"allow"} or not isinstance(doc.data.get("allow", []), list):
        raise InputError(f"{origin}:{doc.line}: expected a mapping with one key, allow: a list of {{rule, object, reason}} entries")
    slugs = {r.slug: r.id for r in registry}
    entries = []
    for i, item in enumerate(doc.data.get("allow") or []):
        line = doc.line_of(f"/allow/{i}")
        where = f"{origin}:{line}: allowlist entry {i + 1}"
        if not isinstance(item, dict):
            raise InputError(f"{where} is not a mapping of {', '.join(FIELDS)}")
        unknown = sorted(set(map(str, item)) - set(FIELDS))
        if unknown:
            # repr: a field name may hold a line break, and the error is one line
            raise InputError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(FIELDS)}")
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(f"{where} needs a reason: say why the finding is acceptable")
        rule = item.get("rule")
        if not isinstance(rule, str) or (rule not in registry and rule not in slugs):
            raise InputError(f"{where}: rule {rule!r} is not a known rule id or slug (fedgen validate --list-rules)")
        obj = item.get("object")
        if not isinstance(obj, str) or not obj.strip():
            raise InputError(f"{where} needs an object: Kind/namespace/name (or Kind/name); globs match warnings only")
        path = item.get("path")
        if path is not None and not isinstance(path, str):
            raise InputError(f"{where}: path must be a string (the finding's file; globs match warnings only)")
        entries.append(Entry(rule=slugs.get(rule, rule), object=obj.strip(), path=path, reason=reason.strip(), line=line))
    return tuple(entries)


def apply_allowlist(findings: Iterable[Finding], entries: tuple[Entry, ...], registry: Registry) -> tuple[list[Finding], list[Suppressed], list[Entry]]:
    """(kept findings, suppressed findings, entries that matched nothing)."""
    kept: list[Finding] = []
    suppressed: list[Suppressed] = []
    used: set[int] = set()
    for finding in findings:
        slug = registry.get(finding.rule).slug if finding.rule in registry else ""
        hit = next((i for i, e in enumerate(entries) if e.matches(finding, slug)), None)
        if hit is None:
            kept.append(finding)
        else:
            used.add(hit)
            suppressed.append(Suppressed(finding, entries[hit].reason, entries[hit].line))
    return kept, suppressed, [e for i, e in enumerate(entries) if i not in used]
