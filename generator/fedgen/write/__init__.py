"""Plan a render against the repo, then apply it atomically (journal + roll-forward)."""

from fedgen.write.apply import apply_plan_locked, recover, writing
from fedgen.write.plan import Change, Plan, make_plan, preflight, removal_plan

__all__ = ["Change", "Plan", "apply_plan_locked", "make_plan", "preflight", "recover", "removal_plan", "writing"]
