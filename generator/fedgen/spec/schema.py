"""JSON Schema validation of the spec, with every error positioned and sorted."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from fedgen.paths import SPEC_SCHEMA
from fedgen.spec.yamlsafe import LoadedYaml


@cache
def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SPEC_SCHEMA.read_text())
    return schema


def _whole_pattern(validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """`pattern` matched against the whole string. In JSON Schema (ECMA-262) `$` is the end of the string; in
    Python's re it also matches before a final newline, so jsonschema's re.search accepts "name\n" for "^name$".
    Every pattern of the spec schema is anchored ^...$ (tests/spec/test_spec.py checks), so a whole-string match is
    exactly what an editor checks with the same schema."""
    if validator.is_type(instance, "string") and not re.fullmatch(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


SpecValidator = validators.extend(Draft202012Validator, {"pattern": _whole_pattern})


def schema_errors(doc: LoadedYaml) -> list[tuple[tuple[int, int], str]]:
    """All schema violations as ((line, col), 'FILE:LINE:COL: message'), sorted by position."""
    validator = SpecValidator(spec_schema())
    found: dict[str, tuple[int, int]] = {}
    for err in validator.iter_errors(doc.data):
        for path, key, message in _explain(err):
            pos = doc.position(path, key=key)
            found.setdefault(f"{doc.origin}:{pos[0]}:{pos[1]}: {message}", pos)
    return sorted(((pos, msg) for msg, pos in found.items()), key=lambda item: (item[0], item[1]))


def _explain(err: ValidationError) -> list[tuple[list[str | int], bool, str]]:
    path = list(err.absolute_path)
    where = _dotted(path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        out = []
        for extra in sorted(set(err.instance) - set(allowed), key=str):
            hint = difflib.get_close_matches(str(extra), allowed, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
            out.append(([*path, extra], True, f"unknown field {_dotted([*path, extra])!r}{suggestion}"))
        return out
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return [(path, True, f"{where or 'the document'}: missing required field {missing!r}")]
    if err.validator == "enum":
        choices = ", ".join(json.dumps(c) for c in err.validator_value)
        return [(path, False, f"{where}: {json.dumps(_plain(err.instance))} is not one of {choices}")]
    if err.validator == "const":
        return [(path, False, f"{where}: expected {json.dumps(err.validator_value)}, got {json.dumps(_plain(err.instance))}")]
    if err.validator == "type":
        return [(path, False, f"{where or 'the document'}: expected {err.validator_value}, got {_type_name(err.instance)}")]
    if err.validator == "pattern":
        desc = err.schema.get("description")
        extra = f" ({desc})" if desc else ""
        return [(path, False, f"{where}: {json.dumps(_plain(err.instance))} does not match {err.validator_value}{extra}")]
    return [(path, False, f"{where or 'the document'}: {_short(err.message)}")]


def _dotted(path: list[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _type_name(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else type(value).__name__


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= 200 else message[:197] + "..."
