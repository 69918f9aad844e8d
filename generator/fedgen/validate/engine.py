"""Run the registered rules over the model, locate and fingerprint what they report, apply the allowlist."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.validate.allowlist import ALLOWLIST_PATH, Entry, apply_allowlist, parse_allowlist
from fedgen.validate.finding import ERROR, NAME_LIMIT, WARNING, Finding, Suppressed, fingerprint, printable
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
        path=printable(path, NAME_LIMIT),
        line=line,
        object=None if obj is None else printable(obj, NAME_LIMIT),
        message=printable(hit.message),
        remediation=rule.remediation,
        pointer=printable(hit.pointer, NAME_LIMIT),
        fingerprint=fingerprint(rule.id, path, obj, hit.pointer),
    )


def _findings(model: Model, rules: Iterable[Rule]) -> dict[str, Finding]:
    """Findings of the given rules by fingerprint (an object built by two roots is reported once)."""
    out: dict[str, Finding] = {}
    for rule in rules:
        for hit in rule.check(model):
            finding = locate(rule, hit)
            out.setdefault(finding.fingerprint, finding)
    return out


def run_rules(model: Model, registry: Registry) -> list[Finding]:
    """Every rule's findings, deduplicated by fingerprint, sorted."""
    return sorted(_findings(model, registry).values(), key=lambda f: f.sort_key)


def _unused_message(entry: Entry) -> str:
    message = f"allowlist entry for {entry.rule} {entry.object} matches no finding; remove it"
    if entry.is_glob:
        message += " (globs match warnings only: an error is silenced only by naming its exact object)"
    return message


def unused_entries(entries: Iterable[Entry], registry: Registry, origin: str = ALLOWLIST_PATH) -> list[Finding]:
    rule = registry.get(UNUSED_ALLOWLIST_RULE)
    hits = [Hit(message=_unused_message(e), path=origin, line=e.line, pointer=f"/allow/{e.rule}/{e.object}") for e in entries]
    return [locate(rule, h) for h in hits]


MAX_ALLOWLIST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[Entry, ...] = ()
    origin: str = ALLOWLIST_PATH  # how findings name the file: repo-relative, or as given


def load_allowlist(repo: Path, registry: Registry, path: Path | None = None) -> Allowlist:
    """The repo's .fedgen/allowlist.yaml (when there is one; never through a symbolic link), or the file
    given (which must exist)."""
    if path is None:
        path, origin = repo / ALLOWLIST_PATH, ALLOWLIST_PATH
        if any(p.is_symlink() for p in (repo / ".fedgen", path)):
            raise InputError(f"{origin}: a symbolic link; validate reads nothing outside the repository")
        if not path.is_file():
            return Allowlist()
    else:
        inside = path.resolve().is_relative_to(repo.resolve())
        origin = path.resolve().relative_to(repo.resolve()).as_posix() if inside else str(path)
        if not path.is_file():
            raise InputError(f"{origin}: --allowlist is not a file")
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_ALLOWLIST_BYTES + 1)
        if len(raw) > MAX_ALLOWLIST_BYTES:
            raise InputError(f"{origin}: larger than {MAX_ALLOWLIST_BYTES // 1024} KiB")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{origin}: cannot read ({exc})") from None
    return Allowlist(parse_allowlist(text, origin=origin, registry=registry), origin)


def report_for(model: Model, registry: Registry, findings: list[Finding], allowlist: Allowlist = Allowlist()) -> Report:
    """Pure: the report for a model and the findings of its rules (allowlist, unused entries)."""
    kept, suppressed, unused = apply_allowlist(findings, allowlist.entries, registry)
    if UNUSED_ALLOWLIST_RULE in registry:
        kept.extend(unused_entries(unused, registry, allowlist.origin))
    return Report(
        findings=tuple(sorted(kept, key=lambda f: f.sort_key)),
        suppressed=tuple(sorted((replace(s, reason=printable(s.reason)) for s in suppressed), key=lambda s: s.finding.sort_key)),
        rules=tuple(registry),
        kubernetes_version=model.kubernetes_version,
        objects=sum(len(r.objects) for r in model.roots),
        files=len(model.files),
        sync_roots=tuple(r.path for r in model.sync_roots),
    )


def evaluate(model: Model, registry: Registry, allowlist: Allowlist = Allowlist()) -> Report:
    """Pure: the report for a model (rules, allowlist, unused entries)."""
    return report_for(model, registry, run_rules(model, registry), allowlist)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the model is built: it is one large, acyclic, short-lived heap
    (parsed files), and collections that walk it again and again cost more than the reading itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def validate(
    *,
    repo: Path,
    kubernetes_version: str | None = None,
    registry: Registry | None = None,
    now: dt.datetime | None = None,
    allowlist: Path | None = None,
) -> Report:
    """Validate a rendered repository: no state, no network, no credentials. Never prints.

    allowlist: the allowlist file to apply (default: the repo's .fedgen/allowlist.yaml, when present); a PR
    check passes the base branch's, so that a pull request cannot silence its own findings.

    The report is evaluate(collect_model(...))'s. For speed, kubectl kustomize starts before the rules are
    even imported, kubeconform starts as soon as the builds are done, and the rules that do not read its
    verdicts run while it does."""
    from fedgen.validate.collect.collector import ModelCollector
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions

    kubernetes_version = kubernetes_version or DEFAULT_KUBERNETES_VERSION
    if not repo.is_dir():
        raise InputError(f"{repo}: --repo is not a folder")
    versions = available_kubernetes_versions()
    if kubernetes_version not in versions:
        raise InputError(f"unknown Kubernetes version {kubernetes_version!r}: schemas are available for {', '.join(versions)}")
    with _gc_paused(), ModelCollector(repo.resolve(), kubernetes_version=kubernetes_version, now=now) as started:
        if registry is None:
            from fedgen.validate.rules import REGISTRY

            registry = REGISTRY
        allowed = load_allowlist(repo, registry, allowlist)
        pending = started.finish()
        found = _findings(pending.model, [r for r in registry if not r.uses_schema])
        model = pending.complete()
        found.update(_findings(model, [r for r in registry if r.uses_schema]))
        return report_for(model, registry, sorted(found.values(), key=lambda f: f.sort_key), allowed)
