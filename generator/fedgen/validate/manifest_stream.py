"""A stream of Kubernetes manifests split into its documents, numbered as YAML numbers them.

The stream is split and read with libyaml (PyYAML's C parser, YAML 1.1 like Kubernetes' own reader) when it is
installed, else with ruamel.yaml's pure Python parser; a stream neither can parse is split on ``---`` lines, as
kubeconform splits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fedgen.errors import InputError

_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$")


@dataclass(frozen=True)
class Document:
    index: int
    text: str
    data: Any  # parsed content, or None when it could not be parsed
    json: bool = False  # text is JSON: no line of it can read as a YAML document separator


def _libyaml() -> Any:
    """PyYAML when its libyaml binding (CSafeLoader) is installed, else None. Imported on first use."""
    try:
        import yaml  # type: ignore[import-untyped]

        yaml.CSafeLoader  # noqa: B018 - AttributeError without libyaml
    except (ImportError, AttributeError):  # pragma: no cover - depends on the environment
        return None
    return yaml


def _split_with_yaml(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each document, as a YAML parser numbers them (libyaml's event parser,
    linear and in C; libyaml marks count characters, not bytes). Raises the parser's error on broken YAML."""
    yaml = _libyaml()
    spans: list[tuple[int, int]] = []
    start: int | None = None
    if yaml is not None:
        events: Any = yaml.parse(text, Loader=yaml.CSafeLoader)
        start_type, end_type = yaml.DocumentStartEvent, yaml.DocumentEndEvent
    else:
        from ruamel.yaml import YAML
        from ruamel.yaml.events import DocumentEndEvent, DocumentStartEvent

        events = YAML(typ="safe", pure=True).parse(text)
        start_type, end_type = DocumentStartEvent, DocumentEndEvent
    for event in events:
        if isinstance(event, start_type):
            start = event.end_mark.index
        elif isinstance(event, end_type) and start is not None:
            spans.append((start, max(start, event.start_mark.index)))
            start = None
    return spans


def _yaml_errors() -> tuple[type[BaseException], ...]:
    """The exceptions the parser _split_with_yaml uses raises on broken YAML."""
    yaml = _libyaml()
    if yaml is not None:
        return (yaml.YAMLError,)
    from ruamel.yaml.error import YAMLError

    return (YAMLError,)


def chunk_loader() -> Any:
    """load(text) -> data of one document (libyaml when installed)."""
    yaml = _libyaml()
    if yaml is not None:
        return lambda chunk: yaml.load(chunk, Loader=yaml.CSafeLoader)
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load


def _split_by_lines(text: str) -> list[tuple[int, int]]:
    """Fallback for streams a YAML parser rejects: split on '---' lines, as kubeconform does."""
    spans: list[tuple[int, int]] = []
    start = pos = 0
    seen_separator = False
    for line in text.splitlines(keepends=True):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            spans.append((start, pos))
            start = pos + 3  # whatever follows '---' on its line belongs to the next document
            seen_separator = True
        pos += len(line)
    spans.append((start, len(text)))

    def blank(span: tuple[int, int]) -> bool:
        return all(not ln.strip() or ln.lstrip().startswith("#") for ln in text[span[0] : span[1]].splitlines())

    # Text before the first separator is a document only if it holds something (YAML's explicit start).
    if spans and blank(spans[0]) and (seen_separator or len(spans) == 1):
        spans = spans[1:]
    return spans


def split_documents(manifests: bytes) -> list[Document]:
    """The documents of a YAML stream, numbered as a YAML parser numbers them, each with its text and data."""
    try:
        text = manifests.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"manifests are not UTF-8: {exc}") from exc
    errors = _yaml_errors()
    try:
        spans = _split_with_yaml(text)
    except errors:
        spans = _split_by_lines(text)
    load = chunk_loader()
    documents = []
    for index, (start, end) in enumerate(spans):
        chunk = text[start:end]
        try:
            data = load(chunk)
        except Exception:  # noqa: BLE001 - broken or odd content (duplicate keys, ...) is kubeconform's to report
            data = None
        documents.append(Document(index=index, text=chunk, data=data))
    return documents
