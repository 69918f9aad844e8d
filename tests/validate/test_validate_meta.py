"""The registry's contract: well-formed, unique rules whose IDs are never reused."""

from __future__ import annotations

import re

import pytest

from fedgen.validate.finding import Finding
from fedgen.validate.rule import Registry, Rule
from fedgen.validate.rules import NEVER_USED, REGISTRY, RETIRED

# That every rule has a planted-defect test, and that each plant's collateral names real rules, is checked
# next to the plants (tests/validate/test_validate_rules.py).


def test_rules_are_data_with_stable_ids_and_families() -> None:
    for rule in REGISTRY:
        assert re.fullmatch(r"FG[1-7]\d\d", rule.id)
        assert rule.summary.endswith(".") and rule.remediation
        assert rule.family
    families = {r.id[2] for r in REGISTRY}
    assert families == set("1234567")


def test_registry_refuses_duplicates() -> None:
    rule = next(iter(REGISTRY))
    with pytest.raises(ValueError, match="duplicate rule id"):
        Registry([rule, rule])
    twin = Rule("FG999", rule.slug, rule.severity, rule.summary, rule.remediation, rule.check)
    with pytest.raises(ValueError):
        Registry([rule, Rule("FG198", rule.slug, rule.severity, rule.summary, rule.remediation, rule.check)])
    with pytest.raises(ValueError):
        Registry([twin])  # family digit 9 does not exist


def test_retired_ids_are_never_reused_and_every_gap_is_accounted_for() -> None:
    """An ID names one rule forever. Within each family, every number up to the highest in use is a rule, a
    retired rule, or explicitly never used, so a hole cannot be filled by a new rule by accident."""
    active = set(REGISTRY.ids)
    assert REGISTRY.retired == RETIRED
    assert not active & RETIRED and not active & NEVER_USED and not RETIRED & NEVER_USED
    for family in "1234567":
        numbers = [int(i[3:]) for i in active if i[2] == family]
        for n in range(1, max(numbers) + 1):
            rule_id = f"FG{family}{n:02d}"
            assert rule_id in active | RETIRED | NEVER_USED, f"{rule_id}: a gap; retire it or mark it never used"
    rule = REGISTRY.get("FG301")
    with pytest.raises(ValueError, match="retired"):
        Registry([Rule("FG310", rule.slug, rule.severity, rule.summary, rule.remediation, rule.check)], retired=RETIRED)


def test_fingerprint_ignores_message_and_line() -> None:
    from fedgen.validate.finding import fingerprint

    a = fingerprint("FG301", "x.yaml", "Service/ns/a", "/spec/ports/0/name")
    assert a == fingerprint("FG301", "x.yaml", "Service/ns/a", "/spec/ports/0/name")
    assert a != fingerprint("FG301", "x.yaml", "Service/ns/b", "/spec/ports/0/name")
    assert Finding("FG301", "s", "error", "x", 3, None, "m", "r").sort_key < Finding("FG301", "s", "error", "x", 4, None, "m", "r").sort_key
