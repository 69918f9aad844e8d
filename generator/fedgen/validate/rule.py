"""Rules as data: id, slug, severity, summary, remediation and a pure check over the built model."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedgen.validate.finding import SEVERITIES

if TYPE_CHECKING:
    from fedgen.validate.model import KObject, Model

RULE_ID = re.compile(r"^FG([1-7])\d\d$")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FAMILIES = {
    "1": "spec and drift",
    "2": "schema",
    "3": "mesh",
    "4": "secrets",
    "5": "gitops structure",
    "6": "consistency",
    "7": "hardening and exposure",
}


@dataclass(frozen=True)
class Hit:
    """What a check returns: the object (or file) at fault, a JSON pointer inside it, and a one-line message."""

    message: str
    obj: KObject | None = None
    path: str | None = None  # for file findings (obj is None)
    line: int | None = None  # for file findings; objects are located through their source
    pointer: str = ""
    ref: str | None = None  # the object a file finding is about, when there is one


def on(obj: KObject, pointer: str, message: str) -> Hit:
    return Hit(message=message, obj=obj, pointer=pointer)


def at(path: str, line: int | None, message: str, pointer: str = "", ref: str | None = None) -> Hit:
    return Hit(message=message, path=path, line=line, pointer=pointer, ref=ref)


Check = Callable[["Model"], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    slug: str
    severity: str
    summary: str  # what the rule asserts, one sentence
    remediation: str  # the default fix hint
    check: Check
    # The check reads model.schema (kubeconform's verdicts). Every other rule runs while kubeconform does.
    uses_schema: bool = False

    @property
    def family(self) -> str:
        return FAMILIES[self.id[2]]


class Registry:
    """An explicit, ordered list of rules; refuses duplicate IDs or slugs, malformed entries, and the IDs of
    retired rules (a finding's ID means one thing forever: allowlists and SARIF baselines name it)."""

    def __init__(self, rules: Iterable[Rule], *, retired: Iterable[str] = ()) -> None:
        self._rules: dict[str, Rule] = {}
        self.retired = frozenset(retired)
        for rule_id in sorted(self.retired):
            if not RULE_ID.match(rule_id):
                raise ValueError(f"retired rule id {rule_id!r} is not FG<family 1-7><two digits>")
        slugs: set[str] = set()
        for rule in rules:
            if not RULE_ID.match(rule.id):
                raise ValueError(f"rule id {rule.id!r} is not FG<family 1-7><two digits>")
            if rule.id in self.retired:
                raise ValueError(f"rule id {rule.id} is retired and never reused; take the next free number")
            if rule.id in self._rules:
                raise ValueError(f"duplicate rule id {rule.id}")
            if not SLUG.match(rule.slug) or rule.slug in slugs:
                raise ValueError(f"rule {rule.id}: slug {rule.slug!r} is malformed or already used")
            if rule.severity not in SEVERITIES:
                raise ValueError(f"rule {rule.id}: severity {rule.severity!r} is not one of {SEVERITIES}")
            if not rule.summary or not rule.remediation:
                raise ValueError(f"rule {rule.id}: summary and remediation are required")
            self._rules[rule.id] = rule
            slugs.add(rule.slug)

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self._rules.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def get(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._rules))
