"""Bounds for reading JSON and YAML that someone else wrote (a pull request, a zip, a state file).

A document nested deeper than MAX_DEPTH is refused with TooDeep, a ValueError, so every reader that already
turns ValueError into one clear line keeps doing so; without the bound, deep nesting ends in a RecursionError
somewhere far from the reader (Python's parsers recurse, so do the walks over what they return).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100  # Kubernetes objects and fedgen's own files nest far less


class TooDeep(ValueError):
    def __init__(self, limit: int, line: int | None = None) -> None:
        super().__init__(f"nested deeper than {limit} levels")
        self.limit = limit
        self.line = line


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def check_json_depth(text: str | bytes, limit: int = MAX_DEPTH) -> None:
    """TooDeep when the JSON text nests deeper than limit. In C, linear per level: escapes and everything but
    quotes and brackets dropped, strings cut out, then innermost bracket pairs removed level by level; what
    is left after limit levels is deeper. (Unbalanced brackets are json.loads's to report.)"""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if data.count(b"[") + data.count(b"{") <= limit:
        return
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)
    brackets = b"".join(data.translate(None, _NOT_SKELETON).split(b'"')[::2]).translate(_ONE_KIND)
    for _ in range(limit):
        reduced = brackets.replace(b"[]", b"")
        if reduced == brackets:
            return
        brackets = reduced
    if b"[]" in brackets:
        raise TooDeep(limit)


def loads_json(text: str | bytes, *, limit: int = MAX_DEPTH) -> Any:
    """json.loads, refusing documents nested deeper than limit (TooDeep, a ValueError)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError too
    check_json_depth(text, limit)
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep(limit) from None


def check_yaml_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """TooDeep (with the line) when the YAML text nests deeper than limit, from libyaml's events (C, linear);
    nothing is checked without PyYAML's C extension (the caller's parser then meets its own limits).
    Syntax errors are left to the caller's parser."""
    try:
        import yaml as pyyaml  # type: ignore[import-untyped]

        loader = pyyaml.CSafeLoader(text)
    except (ImportError, AttributeError):  # pragma: no cover - PyYAML comes with nvflare
        return
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (pyyaml.MappingStartEvent, pyyaml.SequenceStartEvent)):
                depth += 1
                if depth > limit:
                    raise TooDeep(limit, event.start_mark.line + 1)
            elif isinstance(event, (pyyaml.MappingEndEvent, pyyaml.SequenceEndEvent)):
                depth -= 1
    except pyyaml.YAMLError:
        return
    finally:
        loader.dispose()
