"""The registry's contract: well-formed, unique rules, each fired by a planted-defect test, none by a clean tree."""

from __future__ import annotations

import re

import pytest

from fedgen.validate.finding import Finding
from fedgen.validate.rule import Registry, Rule
from fedgen.validate.rules import NEVER_USED, REGISTRY, RETIRED
from tests.test_validate_rules import PLANTS


def test_every_rule_has_a_planted_defect_test() -> None:
    planted = {p.rule for p in PLANTS}
    assert sorted(set(REGISTRY.ids) - planted) == [], "rules without a test that fires them"
    assert sorted(planted - set(REGISTRY.ids)) == [], "plants for rules that do not exist"


def test_clean_tree_tests_cover_every_rule() -> None:
    """The clean-tree tests assert an empty report (all rules run), so none fires on a clean render; here we
    check each planted rule's collateral is a real rule, so a typo cannot hide an unexpected finding."""
    for plant in PLANTS:
        assert plant.also <= set(REGISTRY.ids), plant


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
