"""Parse repo YAML/JSON files into plain data, remembering the line of every key and list item.

Rules see plain dict/list/str/int/float/bool/None values; a finding's JSON pointer is turned back into a
line through ``YamlDoc.line_of``, which falls back to the deepest part of the pointer that exists.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fedgen.untrusted import MAX_DEPTH, TooDeep, loads_json

try:  # libyaml through PyYAML (installed with nvflare): ~40x faster than pure-Python parsing, same YAML 1.1
    # reading Kubernetes' own sigs.k8s.io/yaml applies. Without it, ruamel.yaml's safe loader is used
    # (imported only then).
    import yaml as _pyyaml  # type: ignore[import-untyped]

    _FAST_LOADER: Any = _pyyaml.CSafeLoader
    _FAST_ERRORS: tuple[type[BaseException], ...] = (_pyyaml.YAMLError,)
except (ImportError, AttributeError):  # pragma: no cover - depends on the environment
    _pyyaml, _FAST_LOADER, _FAST_ERRORS = None, None, ()


def _ruamel() -> Any:
    """A pure-Python safe ruamel.yaml loader (the fallback without libyaml)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True)


def _parse_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(errors with a position, other YAML errors) of the parser in use."""
    if _FAST_LOADER is not None:
        return _FAST_ERRORS, ()
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    return (MarkedYAMLError,), (YAMLError,)


def escape(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: object) -> str:
    return "".join("/" + escape(t) for t in tokens)


@dataclass(frozen=True)
class YamlDoc:
    path: str  # repo-relative file
    index: int  # position among the file's non-empty documents
    line: int  # 1-based line where the document's content starts
    data: Any
    lines: Mapping[str, int] = field(default_factory=dict, repr=False)  # JSON pointer -> 1-based line

    def line_of(self, ptr: str) -> int:
        """Line of the pointer, or of its deepest existing parent, or of the document."""
        while ptr:
            if ptr in self.lines:
                return self.lines[ptr]
            ptr = ptr.rsplit("/", 1)[0]
        return self.line


@dataclass(frozen=True)
class ParsedFile:
    docs: tuple[YamlDoc, ...]
    error: str | None = None  # one line, when the file does not parse
    error_line: int | None = None
    too_deep: bool = False  # refused for its nesting: its values cannot be inspected


def _scalar(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "value"):  # a tagged scalar
        return _scalar(value.value)
    return str(value)


def _clean(value: Any, depth: int = 0) -> Any:
    """Constructed YAML -> JSON-like plain values (dates as ISO strings, binary as base64); TooDeep past
    MAX_DEPTH levels."""
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise TooDeep(MAX_DEPTH)
    if isinstance(value, dict):
        return {(_scalar(k) if not isinstance(k, (dict, list)) else str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, depth + 1) for v in value]
    return _scalar(value)


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(f'duplicate key "{key}"')
        self.line = line


class _ExcessiveAliasing(Exception):
    def __init__(self, line: int) -> None:
        super().__init__("excessive aliasing: aliases expand the document more than tenfold (an alias bomb?)")
        self.line = line


# An alias is walked once per reference: a few lines of nested aliases expand to billions of nodes. Like
# Kubernetes' YAML reader (go-yaml's "excessive aliasing"), refuse a document whose expansion outgrows its
# distinct nodes: past ALIAS_FREE_NODES visits, at most ALIAS_EXPANSION visits per distinct node.
ALIAS_FREE_NODES = 10_000
ALIAS_EXPANSION = 10


@dataclass
class _Walk:
    visits: int = 0
    distinct: set[int] = field(default_factory=set)

    def visit(self, node: Any) -> None:
        self.visits += 1
        self.distinct.add(id(node))
        if self.visits > ALIAS_FREE_NODES and self.visits > ALIAS_EXPANSION * len(self.distinct):
            raise _ExcessiveAliasing(node.start_mark.line + 1)


def _lines(node: Any, ptr: str, out: dict[str, int], walk: _Walk | None = None, depth: int = 0) -> None:
    """JSON pointer -> 1-based line of every key and list item under a composed node (PyYAML or ruamel);
    refuses duplicate keys, which Kubernetes' YAML reader rejects too, excessive aliasing, and nesting deeper
    than MAX_DEPTH."""
    walk = walk or _Walk()
    walk.visit(node)
    if node.id in ("mapping", "sequence") and depth >= MAX_DEPTH:
        raise TooDeep(MAX_DEPTH, node.start_mark.line + 1)
    if node.id == "mapping":
        seen: set[str] = set()
        for key, value in node.value:
            token = key.value if key.id == "scalar" else "?"
            if key.id == "scalar" and token != "<<":
                if token in seen:
                    raise _DuplicateKey(token, key.start_mark.line + 1)
                seen.add(token)
            child = ptr + "/" + escape(token)
            out.setdefault(child, key.start_mark.line + 1)
            _lines(value, child, out, walk, depth + 1)
    elif node.id == "sequence":
        for i, item in enumerate(node.value):
            child = f"{ptr}/{i}"
            out.setdefault(child, item.start_mark.line + 1)
            _lines(item, child, out, walk, depth + 1)


def _nodes(text: str) -> Iterator[tuple[Any, Any]]:
    """(composed node, constructed data) of each document."""
    if _FAST_LOADER is not None:
        loader = _FAST_LOADER(text)
        try:
            while loader.check_node():
                node = loader.get_node()
                yield node, loader.construct_document(node)
        finally:
            loader.dispose()
        return
    yaml = _ruamel()
    for node in yaml.compose_all(text):
        yield node, yaml.constructor.construct_document(node)


_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR = _TAG + "map", _TAG + "seq", _TAG + "str"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "binary", "timestamp"))


class _Unusual(Exception):
    """A node the one-pass reader leaves to the plain way: merge keys, keys that are not scalars, tags other
    than the plain map, seq and scalar ones."""


class _OnePass:
    """libyaml's composed nodes -> plain data and (optionally) the line map in ONE walk, with the plain way's
    checks (duplicate keys, aliasing, depth); what the plain way would make of the same nodes, proven by
    tests/validate/test_validate_speed.py. Anything unusual raises, and the caller reads the text the plain
    way, which also words the errors."""

    def __init__(self, loader: Any, lines: dict[str, int] | None, unique_keys: bool) -> None:
        self.loader = loader
        self.constructors = loader.yaml_constructors
        self.lines = lines
        self.unique_keys = unique_keys
        self.walk = _Walk()

    def scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag not in _SCALAR_TAGS:
            raise _Unusual(tag)
        return _scalar(self.constructors[tag](self.loader, node))

    def build(self, node: Any, ptr: str, depth: int) -> Any:
        walk = self.walk
        walk.visits += 1
        walk.distinct.add(id(node))
        if walk.visits > ALIAS_FREE_NODES and walk.visits > ALIAS_EXPANSION * len(walk.distinct):
            raise _ExcessiveAliasing(node.start_mark.line + 1)
        kind = node.id
        if kind == "scalar":
            return node.value if node.tag == _STR else self.scalar(node)
        if depth >= MAX_DEPTH:
            raise TooDeep(MAX_DEPTH, node.start_mark.line + 1)
        lines = self.lines
        if kind == "mapping":
            if node.tag != _MAP:
                raise _Unusual(node.tag)
            out: dict[Any, Any] = {}
            seen: set[str] = set()
            for key, value in node.value:
                if key.id != "scalar":
                    raise _Unusual("a key that is not a scalar")
                token = key.value
                if token == "<<":
                    raise _Unusual("merge key")
                if self.unique_keys:
                    if token in seen:
                        raise _DuplicateKey(token, key.start_mark.line + 1)
                    seen.add(token)
                if lines is None:
                    child = ""
                else:
                    child = ptr + "/" + (token.replace("~", "~0").replace("/", "~1") if "~" in token or "/" in token else token)
                    lines.setdefault(child, key.start_mark.line + 1)
                out[key.value if key.tag == _STR else self.scalar(key)] = self.build(value, child, depth + 1)
            return out
        if node.tag != _SEQ:
            raise _Unusual(node.tag)
        if lines is None:
            return [self.build(item, "", depth + 1) for item in node.value]
        items = []
        for i, item in enumerate(node.value):
            child = f"{ptr}/{i}"
            lines.setdefault(child, item.start_mark.line + 1)
            items.append(self.build(item, child, depth + 1))
        return items


def _one_pass(text: str, *, positions: bool) -> list[tuple[Any, Any, dict[str, int]]]:
    """(root node, plain data, line map) of each document, read in one walk (raises on anything the plain
    way must read)."""
    loader = _FAST_LOADER(text)
    out = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: dict[str, int] = {}
            out.append((node, _OnePass(loader, lines if positions else None, positions).build(node, "", 0), lines))
    finally:
        loader.dispose()
    return out


def load_all_plain(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream as plain data (for kustomize output: no positions needed)."""
    if _FAST_LOADER is not None:
        try:
            return [data for _, data, _ in _one_pass(text, positions=False) if data is not None]
        except Exception:  # noqa: BLE001 - anything unusual or wrong: the plain way reads it (and raises)
            pass
        docs = list(_pyyaml.load_all(text, Loader=_FAST_LOADER))
    else:
        docs = list(_ruamel().load_all(text))
    return [_clean(d) for d in docs if d is not None]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def parse_yaml(path: str, text: str) -> ParsedFile:
    """The file's documents with their line maps: in one walk over libyaml's nodes (_OnePass), or, when that
    meets anything unusual or wrong, the plain way (parse_yaml_plain), which words the error."""
    if _FAST_LOADER is not None:
        try:
            read = _one_pass(text, positions=True)
        except Exception:  # noqa: BLE001 - anything unusual or wrong: the plain way reads it and says what
            return parse_yaml_plain(path, text)
        docs = [(node, data, lines) for node, data, lines in read if node is not None and data is not None]
        return ParsedFile(
            tuple(YamlDoc(path=path, index=i, line=node.start_mark.line + 1, data=data, lines=lines) for i, (node, data, lines) in enumerate(docs))
        )
    return parse_yaml_plain(path, text)


def parse_yaml_plain(path: str, text: str) -> ParsedFile:
    """The plain way: construct each document, walk it for lines and checks, copy it to plain data."""
    docs: list[YamlDoc] = []
    marked, other = _parse_errors()
    unpositioned: tuple[type[BaseException], ...] = (*other, ValueError)
    try:
        for node, raw in _nodes(text):
            if node is None or raw is None:
                continue
            lines: dict[str, int] = {}
            _lines(node, "", lines)
            docs.append(YamlDoc(path=path, index=len(docs), line=node.start_mark.line + 1, data=_clean(raw), lines=lines))
    except (_DuplicateKey, _ExcessiveAliasing) as exc:
        return ParsedFile(tuple(docs), f"not valid YAML: {exc}", exc.line)
    except TooDeep as exc:
        return ParsedFile(tuple(docs), f"not valid YAML: {exc}", exc.line, too_deep=True)
    except RecursionError:  # a parser's own recursion, before the walk above could count
        return ParsedFile(tuple(docs), f"not valid YAML: {TooDeep(MAX_DEPTH)}", None, too_deep=True)
    except marked as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "not valid YAML"
        if "nesting depth" in problem:  # libyaml's own bound (1000 levels), met before the walk above
            return ParsedFile(tuple(docs), f"not valid YAML: {TooDeep(MAX_DEPTH)}", mark.line + 1 if mark else None, too_deep=True)
        return ParsedFile(tuple(docs), f"not valid YAML: {_one_line(problem)}", mark.line + 1 if mark else None)
    except unpositioned as exc:
        return ParsedFile(tuple(docs), f"not valid YAML: {_one_line(str(exc))[:200]}", None)
    return ParsedFile(tuple(docs))


def parse_json(path: str, text: str) -> ParsedFile:
    try:
        data = loads_json(text)
    except TooDeep as exc:
        return ParsedFile((), f"not valid JSON: {exc}", None, too_deep=True)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        return ParsedFile((), f"not valid JSON: {_one_line(str(exc))}", line)
    return ParsedFile((YamlDoc(path=path, index=0, line=1, data=data),))


def parse_file(path: str, text: str) -> ParsedFile:
    return parse_json(path, text) if path.endswith(".json") else parse_yaml(path, text)
