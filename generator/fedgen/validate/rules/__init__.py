"""The registry: every rule, listed explicitly, family by family. IDs are never reused."""

from __future__ import annotations

from fedgen.validate.rule import Registry
from fedgen.validate.rules import (
    consistency,
    enrollment,
    gitops,
    gitops_engine,
    hardening,
    kit_consistency,
    ledger,
    mesh,
    mesh_bypass,
    rerender,
    schema,
    secrets,
)

# IDs of rules that were removed: never used again (allowlists, SARIF baselines and old reports name them).
RETIRED = frozenset({"FG310"})
# Numbers skipped when a block started at a round number (FG120: the re-render rules): never used, so free.
NEVER_USED = frozenset({"FG115", "FG116", "FG117", "FG118", "FG119"})

REGISTRY = Registry(
    [
        *ledger.RULES,
        *schema.RULES,
        *mesh.RULES,
        *mesh_bypass.RULES,  # FG311-FG315: the loadbalancer (bypass) exposure
        *secrets.RULES,
        *gitops.RULES,
        *gitops_engine.RULES,  # FG510-FG514, FG516: RootSync/RepoSync and Argo CD objects
        *consistency.RULES,
        *kit_consistency.RULES,  # FG608-FG610, FG612-FG613: the NVFlare kits
        *hardening.RULES,
        *enrollment.RULES,  # FG109-FG114, FG408, FG614-FG615: files under enrollment/
        *rerender.RULES,  # FG120-FG125: the tree against what its specs render
    ],
    retired=RETIRED,
)

__all__ = ["NEVER_USED", "REGISTRY", "RETIRED"]
