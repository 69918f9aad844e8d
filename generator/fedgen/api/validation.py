"""The PR check of a rendered repository, and what it checks with: the rules and the spec's JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedgen.validate.engine import Report
    from fedgen.validate.rule import Rule


def validate(*, repo: Path, kubernetes_version: str | None = None, allowlist: Path | None = None) -> Report:
    """Validate a rendered repository: no state, no network, no credentials (fedgen.validate.engine).

    allowlist: the allowlist file to apply instead of the repo's .fedgen/allowlist.yaml (a PR check passes the
    base branch's, so that a pull request cannot silence its own findings).
    """
    from fedgen.validate.engine import validate as run_validation

    return run_validation(repo=repo, kubernetes_version=kubernetes_version, allowlist=allowlist)


def rules() -> tuple[Rule, ...]:
    """Every rule validate applies, in registry order (id, slug, severity, family, summary, remediation)."""
    from fedgen.validate.rules import REGISTRY

    return tuple(REGISTRY)


def retired_rule_ids() -> tuple[str, ...]:
    """IDs of rules that were removed: never given to another rule (old reports and allowlists name them)."""
    from fedgen.validate.rules import RETIRED

    return tuple(sorted(RETIRED))


def schema() -> dict[str, Any]:
    """The JSON Schema of the federation spec."""
    from fedgen.spec.schema import spec_schema

    return spec_schema()
