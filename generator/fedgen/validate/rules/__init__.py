"""The registry: every rule, listed explicitly, family by family. IDs are never reused."""

from __future__ import annotations

from fedgen.validate.rule import Registry
from fedgen.validate.rules import consistency, enrollment, gitops, hardening, ledger, mesh, rerender, schema, secrets

REGISTRY = Registry(
    [
        *ledger.RULES,
        *schema.RULES,
        *mesh.RULES,
        *secrets.RULES,
        *gitops.RULES,
        *consistency.RULES,
        *hardening.RULES,
        *enrollment.RULES,  # FG109-FG114, FG408, FG614-FG615: files under enrollment/
        *rerender.RULES,  # FG120-FG125: the tree against what its specs render
    ]
)

__all__ = ["REGISTRY"]
