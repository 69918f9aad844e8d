"""Where parsed documents differ from the ones expected: object by object, field by field (JSON pointers)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fedgen.validate.model import identity, is_object, ref_of
from fedgen.validate.rerender import STAND_IN, counterpart
from fedgen.validate.yamlsource import YamlDoc, escape

SHOWN = 120  # characters of a value a message quotes


def show(value: Any) -> str:
    """A value as one short line of JSON (escaped, so nothing of it can break a report)."""
    if isinstance(value, str) and value.startswith(STAND_IN):
        return "a certificate, key or ciphertext (from the state)"
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)
    except (RecursionError, ValueError):
        return "a value nested too deeply to show"
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


@dataclass(frozen=True)
class Difference:
    doc: YamlDoc | None  # the repo's document (for its lines); None when it is missing
    ref: str | None  # Kind/namespace/name of the object, when the document is one
    pointer: str
    message: str

    @property
    def line(self) -> int | None:
        return self.doc.line_of(self.pointer) if self.doc is not None else None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True is not 1, 1 is not 1.0: each renders differently


MISSING = object()  # a field one side does not have


def fields(expected: Any, actual: Any, ptr: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(pointer, expected, actual) for every field where actual is not expected (MISSING: not there)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted({*expected, *actual}, key=str):
            yield from fields(expected.get(key, MISSING), actual.get(key, MISSING), f"{ptr}/{escape(key)}")
    elif isinstance(expected, list) and isinstance(actual, list):
        for i in range(max(len(expected), len(actual))):
            yield from fields(expected[i] if i < len(expected) else MISSING, actual[i] if i < len(actual) else MISSING, f"{ptr}/{i}")
    elif not _same(expected, actual):
        yield ptr, expected, actual


def describe(expected: Any, actual: Any, source: str) -> str:
    """One line on a difference, source saying where the expected value comes from ("the spec renders")."""
    if actual is MISSING:
        return f"missing, where {source} {show(expected)}"
    if expected is MISSING:
        return f"{show(actual)} here, where {source} nothing"
    return f"{show(actual)} here, where {source} {show(expected)}"


def _ref(data: Any) -> str | None:
    """Kind/namespace/name of a named object (a kustomization is none)."""
    return ref_of(data) if is_object(data) and identity(data)[3] else None


def differences(expected: Sequence[YamlDoc], actual: Sequence[YamlDoc], source: str) -> list[Difference]:
    """Objects are paired by identity (kind, namespace, name), other documents by position; source: see describe."""
    out: list[Difference] = []
    matched: set[int] = set()
    actual_t = tuple(actual)
    for index, want in enumerate(expected):
        ref = _ref(want.data)
        have = counterpart(want.data, index, actual_t)
        if have is None:
            out.append(Difference(None, ref, "", f"{ref or 'a document'} is missing, where {source} it"))
            continue
        matched.add(have.index)
        out += [Difference(have, ref, ptr, describe(e, a, source)) for ptr, e, a in fields(want.data, have.data)]
    for have in actual_t:
        if have.index not in matched:
            ref = _ref(have.data)
            out.append(Difference(have, ref, "", f"{ref or 'this document'} is here, where {source} no such document"))
    return out
