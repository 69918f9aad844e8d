"""Read a YAML document the paranoid way, keeping positions for error messages.

Refused: more than MAX_BYTES, more than one document, anchors and aliases (alias bombs), tags other than
the YAML core ones, duplicate keys, nesting deeper than MAX_DEPTH, more than MAX_ITEMS entries in one list or
mapping or MAX_NODES values in all, and control or invisible formatting characters in any key or value (a
"host\n" would end up in a kit as "host\n:8002", a line break in a name inside a generated command). Every
refusal is a positioned SpecErrors.

Bounded time, and fast: libyaml's C parser (PyYAML's, installed with nvflare) reads the text once, in linear
time; its events are checked for size and nesting as they come, and composed into ruamel.yaml's node tree,
tags resolved by ruamel.yaml's YAML 1.2 resolver. ruamel.yaml then checks and constructs the data as it always
did (round-trip types that remember line and column). Its own pure-Python parser cost ~0.25 ms per value
(half a second for a 500-site spec) and far more on some hostile inputs (a 20 KB line of "[" took seconds,
quadratic in the nesting); it is used only where PyYAML lacks its C extension.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fedgen.errors import InputError, SpecErrors
from fedgen.spec import MAX_BYTES

MAX_DEPTH = 32
MAX_ITEMS = 10_000  # the schema's longest list (sites) allows 5000
MAX_NODES = 200_000
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))


@dataclass(frozen=True)
class LoadedYaml:
    """The parsed document (ruamel round-trip types, which remember line and column) and its origin."""

    data: Any
    origin: str

    def position(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, column) of the value at path (or of its key), or of the deepest existing parent."""
        node = self.data
        line, col = 1, 1
        for step in path:
            if isinstance(node, CommentedMap) and step in node:
                kl, kc = node.lc.key(step)
                vl, vc = node.lc.value(step)
                line, col = (kl, kc) if key and step == path[-1] else (vl, vc)
                line, col = line + 1, col + 1
                node = node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
                il, ic = node.lc.item(step)
                line, col = il + 1, ic + 1
                node = node[step]
            else:
                break
        return line, col

    def error(self, path: Sequence[str | int], message: str, *, key: bool = False) -> str:
        line, col = self.position(path, key=key)
        return f"{self.origin}:{line}:{col}: {message}"


def load_yaml_file(path: Path, *, origin: str | None = None) -> LoadedYaml:
    origin = origin or str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{origin}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{origin}: is a folder, expected a YAML file") from None
    except OSError as exc:
        raise InputError(f"{origin}: cannot read ({exc.strerror})") from None
    return load_yaml_bytes(raw, origin=origin)


def load_yaml_bytes(raw: bytes, *, origin: str) -> LoadedYaml:
    if len(raw) > MAX_BYTES:
        raise SpecErrors([f"{origin}:1:1: file is larger than {MAX_BYTES // 1024} KiB; a federation spec is far smaller"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecErrors([f"{origin}:1:1: not UTF-8 text (byte {exc.start})"]) from None
    if "\x00" in text:
        raise SpecErrors([f"{origin}:1:1: contains a NUL character"])
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    nodes = _compose(yaml, text, origin)
    if not nodes:
        raise SpecErrors([f"{origin}:1:1: the file is empty; expected a Federation spec"])
    if len(nodes) > 1:
        mark = nodes[1].start_mark
        raise SpecErrors([f"{origin}:{mark.line + 1}:{mark.column + 1}: more than one YAML document; a spec file holds exactly one"])
    problems: list[str] = []
    _check_nodes(nodes[0], origin, problems, depth=0, seen=set())
    if problems:
        raise SpecErrors(problems)
    try:
        data = yaml.constructor.construct_document(nodes[0])  # the nodes composed above: no second parse
    except MarkedYAMLError as exc:
        raise SpecErrors([_marked(origin, exc)]) from None
    except (YAMLError, ValueError) as exc:
        raise SpecErrors([f"{origin}:1:1: not valid YAML ({_one_line(str(exc))})"]) from None
    return LoadedYaml(data=data, origin=origin)


def _compose(yaml: YAML, text: str, origin: str) -> list[Node]:
    """The node tree of each document, as ruamel.yaml composes it, from libyaml's events (see the module's
    docstring); without PyYAML's C extension, ruamel.yaml's own parser composes it."""
    try:
        import yaml as pyyaml  # type: ignore[import-untyped]

        loader = pyyaml.CSafeLoader(text)
    except (ImportError, AttributeError):  # pragma: no cover - PyYAML comes with nvflare
        try:
            return [n for n in yaml.compose_all(text) if n is not None]
        except MarkedYAMLError as exc:
            raise SpecErrors([_marked(origin, exc)]) from None
        except (YAMLError, RecursionError, ValueError) as exc:
            raise SpecErrors([f"{origin}:1:1: not valid YAML ({_one_line(str(exc))})"]) from None
    try:
        return _EventComposer(yaml, origin).compose(loader, pyyaml)
    except pyyaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = _one_line(exc.problem or exc.context or "not valid YAML")
        if "nesting depth" in problem:  # libyaml reads ahead and can meet its own bound (1000) first
            problem = f"nested deeper than {MAX_DEPTH} levels"
        raise SpecErrors([f"{origin}:{line}:{col}: {problem}"]) from None
    except pyyaml.YAMLError as exc:
        raise SpecErrors([f"{origin}:1:1: not valid YAML ({_one_line(str(exc))})"]) from None
    finally:
        loader.dispose()


class _EventComposer:
    """libyaml's events -> ruamel.yaml nodes (what ruamel.yaml's Composer makes of the same events), refusing
    a second document, too many values or entries, and too deep a nesting as soon as they appear."""

    def __init__(self, yaml: YAML, origin: str) -> None:
        self.yaml = yaml
        self.origin = origin
        self.documents: list[Node] = []
        self.anchors: dict[str, Node] = {}
        self.open: list[tuple[Node, list[Node | None]]] = []  # open collections, each with its pending key
        self.nodes = 0

    def refuse(self, mark: Any, message: str) -> NoReturn:
        raise SpecErrors([f"{self.origin}:{mark.line + 1}:{mark.column + 1}: {message}"])

    def mark(self, mark: Any) -> StreamMark:
        return StreamMark(self.origin, mark.index, mark.line, mark.column)

    def compose(self, loader: Any, pyyaml: Any) -> list[Node]:
        starts = (pyyaml.MappingStartEvent, pyyaml.SequenceStartEvent)
        empty: ScalarNode | None = None  # an empty value of a block mapping: ruamel.yaml places it where the next token starts
        while loader.check_event():
            event = loader.get_event()
            if empty is not None:
                empty.start_mark = empty.end_mark = self.mark(event.start_mark)
                empty = None
            if isinstance(event, pyyaml.DocumentStartEvent):
                self.anchors = {}
                self.yaml.version = event.version  # a %YAML directive: its resolution rules, as ruamel.yaml reads them
            elif isinstance(event, (pyyaml.MappingEndEvent, pyyaml.SequenceEndEvent)):
                node, _ = self.open.pop()
                node.end_mark = self.mark(event.end_mark)
            elif isinstance(event, pyyaml.AliasEvent):
                found = self.anchors.get(event.anchor)
                if found is None:
                    self.refuse(event.start_mark, f"found undefined alias {event.anchor!r}")
                self.add(found, event)
            elif isinstance(event, pyyaml.ScalarEvent):
                node = ScalarNode(
                    self.tag(ScalarNode, event),
                    event.value,
                    self.mark(event.start_mark),
                    self.mark(event.end_mark),
                    style=event.style or None,
                    anchor=event.anchor,
                )
                if not event.value and not event.style and self._block_value_next():
                    empty = node
                self.add(node, event)
            elif isinstance(event, starts):
                kind = MappingNode if isinstance(event, pyyaml.MappingStartEvent) else SequenceNode
                node = kind(self.tag(kind, event), [], self.mark(event.start_mark), None, flow_style=event.flow_style, anchor=event.anchor)
                self.add(node, event)
                self.open.append((node, [None]))
                if len(self.open) > MAX_DEPTH + 1:
                    self.refuse(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        return self.documents

    def _block_value_next(self) -> bool:
        """Whether the next node is the value of a block mapping's pending key."""
        if not self.open:
            return False
        parent, pending = self.open[-1]
        return isinstance(parent, MappingNode) and not parent.flow_style and pending[0] is not None

    def tag(self, kind: type[Node], event: Any) -> Any:
        if event.tag is None or event.tag == "!":
            return self.yaml.resolver.resolve(kind, event.value if kind is ScalarNode else None, event.implicit)
        return event.tag

    def add(self, node: Node, event: Any) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.refuse(event.start_mark, f"more than {MAX_NODES} values; a federation spec is far smaller")
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        if not self.open:  # the root node of a document
            if self.documents:
                self.refuse(event.start_mark, "more than one YAML document; a spec file holds exactly one")
            self.documents.append(node)
            return
        parent, pending = self.open[-1]
        held = 2 * len(parent.value) + (pending[0] is not None) if isinstance(parent, MappingNode) else len(parent.value)
        if held >= 2 * MAX_ITEMS:  # keys and values, or items
            self.refuse(event.start_mark, f"more than {MAX_ITEMS} entries in one list or mapping; a federation spec is far smaller")
        if isinstance(parent, SequenceNode):
            parent.value.append(node)
        elif pending[0] is None:
            pending[0] = node
        else:
            parent.value.append((pending[0], node))
            pending[0] = None


# Unicode categories no spec string may hold: control (C0, DEL, C1: newline, tab, escape...), format (bidi
# overrides, zero-width characters), line and paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def forbidden_character(text: str) -> str | None:
    """The first control or invisible formatting character in `text`, or None."""
    return next((c for c in text if unicodedata.category(c) in _FORBIDDEN_CATEGORIES), None)


def _check_scalar(node: ScalarNode, origin: str, problems: list[str]) -> None:
    bad = forbidden_character(node.value) if isinstance(node.value, str) else None
    if bad is not None:
        shown = node.value if len(node.value) <= 60 else node.value[:57] + "..."
        problems.append(
            f"{origin}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {shown!r} holds the control or invisible "
            f"character U+{ord(bad):04X}; spec values and keys are single-line plain text (a trailing newline counts too)"
        )


def _check_nodes(node: Node, origin: str, problems: list[str], *, depth: int, seen: set[int]) -> None:
    where = f"{origin}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    if id(node) in seen:  # an alias of an anchored node already reported
        return
    seen.add(id(node))
    if node.anchor:
        problems.append(f"{where}: YAML anchors and aliases are not allowed in a spec (write the value out)")
        return
    if depth > MAX_DEPTH:
        problems.append(f"{where}: nested deeper than {MAX_DEPTH} levels")
        return
    if node.tag not in _CORE_TAGS and not (isinstance(node, ScalarNode) and node.tag is None):
        problems.append(f"{where}: YAML tag {node.tag!r} is not allowed; plain values only")
        return
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                kw = f"{origin}:{key.start_mark.line + 1}:{key.start_mark.column + 1}"
                problems.append(f"{kw}: mapping keys must be plain strings")
                continue
            if key.tag == "tag:yaml.org,2002:merge" or key.value == "<<":
                kw = f"{origin}:{key.start_mark.line + 1}:{key.start_mark.column + 1}"
                problems.append(f"{kw}: YAML merge keys (<<) are not allowed in a spec")
                continue
            _check_scalar(key, origin, problems)
            _check_nodes(value, origin, problems, depth=depth + 1, seen=seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _check_nodes(item, origin, problems, depth=depth + 1, seen=seen)
    elif isinstance(node, ScalarNode):
        _check_scalar(node, origin, problems)


def _marked(origin: str, exc: MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "not valid YAML"
    if "duplicate key" in str(exc):
        problem = f"duplicate key: {problem}"
    return f"{origin}:{line}:{col}: {_one_line(problem)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
