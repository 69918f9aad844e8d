"""Plan a render against the repo, then apply it atomically (journal + roll-forward)."""

from fedgen.write.apply import apply_plan_locked, recover, writing
from fedgen.write.plan import Change, Plan, RenderedFiles, make_plan, preflight, removal_plan, require_rendered

__all__ = ["Change", "Plan", "RenderedFiles", "apply_plan_locked", "make_plan", "preflight", "recover", "removal_plan", "require_rendered", "writing"]
