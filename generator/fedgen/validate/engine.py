"""Run the registered rules over the model, locate and fingerprint what they report, apply the allowlist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.validate.allowlist import ALLOWLIST_PATH, Entry, apply_allowlist, parse_allowlist
from fedgen.validate.finding import ERROR, WARNING, Finding, Suppressed, fingerprint
from fedgen.validate.model import Model
from fedgen.validate.rule import Hit, Registry, Rule

UNUSED_ALLOWLIST_RULE = "FG108"


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    suppressed: tuple[Suppressed, ...]
    rules: tuple[Rule, ...]
    kubernetes_version: str
    objects: int = 0
    files: int = 0
    sync_roots: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    @property
    def exit_code(self) -> int:
        """Errors fail the check; warnings are reported but do not."""
        return 1 if self.errors else 0

    def summary(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "warnings": self.warnings,
            "suppressed": len(self.suppressed),
            "objects": self.objects,
            "files": self.files,
            "syncRoots": list(self.sync_roots),
            "kubernetesVersion": self.kubernetes_version,
            "rules": len(self.rules),
        }


def locate(rule: Rule, hit: Hit) -> Finding:
    if hit.obj is not None:
        path, line = hit.obj.location(hit.pointer)
        obj: str | None = hit.obj.ref
    else:
        path, line, obj = hit.path or "", hit.line, hit.ref
    return Finding(
        rule=rule.id,
        slug=rule.slug,
        severity=rule.severity,
        path=path,
        line=line,
        object=obj,
        message=" ".join(hit.message.split()),
        remediation=rule.remediation,
        pointer=hit.pointer,
        fingerprint=fingerprint(rule.id, path, obj, hit.pointer),
    )


def run_rules(model: Model, registry: Registry) -> list[Finding]:
    """Every rule's findings, deduplicated by fingerprint (an object built by two roots is reported once)."""
    out: dict[str, Finding] = {}
    for rule in registry:
        for hit in rule.check(model):
            finding = locate(rule, hit)
            out.setdefault(finding.fingerprint, finding)
    return sorted(out.values(), key=lambda f: f.sort_key)


def unused_entries(entries: Iterable[Entry], registry: Registry) -> list[Finding]:
    rule = registry.get(UNUSED_ALLOWLIST_RULE)
    hits = [
        Hit(message=f"allowlist entry for {e.rule} {e.object} matches no finding; remove it", path=ALLOWLIST_PATH, line=e.line, pointer=f"/allow/{e.rule}/{e.object}")
        for e in entries
    ]
    return [locate(rule, h) for h in hits]


def load_allowlist(repo: Path, registry: Registry) -> tuple[Entry, ...]:
    path = repo / ALLOWLIST_PATH
    if not path.is_file():
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{ALLOWLIST_PATH}: cannot read ({exc})") from None
    return parse_allowlist(text, origin=ALLOWLIST_PATH, registry=registry)


def evaluate(model: Model, registry: Registry, entries: tuple[Entry, ...] = ()) -> Report:
    """Pure: the report for a model (rules, allowlist, unused entries)."""
    findings = run_rules(model, registry)
    kept, suppressed, unused = apply_allowlist(findings, entries, registry)
    if UNUSED_ALLOWLIST_RULE in registry:
        kept.extend(unused_entries(unused, registry))
    return Report(
        findings=tuple(sorted(kept, key=lambda f: f.sort_key)),
        suppressed=tuple(sorted(suppressed, key=lambda s: s.finding.sort_key)),
        rules=tuple(registry),
        kubernetes_version=model.kubernetes_version,
        objects=sum(len(r.objects) for r in model.roots),
        files=len(model.files),
        sync_roots=tuple(r.path for r in model.sync_roots),
    )


def validate(
    *,
    repo: Path,
    kubernetes_version: str | None = None,
    registry: Registry | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Validate a rendered repository: no state, no network, no credentials. Never prints."""
    from fedgen.validate.build import build_model
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions
    from fedgen.validate.rules import REGISTRY

    registry = registry if registry is not None else REGISTRY
    kubernetes_version = kubernetes_version or DEFAULT_KUBERNETES_VERSION

    if not repo.is_dir():
        raise InputError(f"{repo}: --repo is not a folder")
    versions = available_kubernetes_versions()
    if kubernetes_version not in versions:
        raise InputError(f"unknown Kubernetes version {kubernetes_version!r}: schemas are available for {', '.join(versions)}")
    entries = load_allowlist(repo, registry)
    model = build_model(repo.resolve(), kubernetes_version=kubernetes_version, now=now)
    return evaluate(model, registry, entries)
