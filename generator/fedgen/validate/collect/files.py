"""The repo's files, each read once: the private keys in it (any size), its text, and its documents when it
is YAML or JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from fedgen.untrusted import MAX_DEPTH, TooDeep
from fedgen.validate.keyscan import scan_bytes, scan_path
from fedgen.validate.model import RepoFile
from fedgen.validate.scan import MAX_BYTES, as_text, read_small
from fedgen.validate.yamlsource import ParsedFile, parse_file


def read_file(repo: Path, rel: str, parsed: Mapping[str, tuple[str, ParsedFile]] | None = None) -> RepoFile:
    """One file: its keys (every file, any size), its text, and its documents when it is YAML/JSON. parsed:
    files already parsed (the kustomization guard's), reused when their text is this file's text."""
    path = repo / rel
    data = read_small(path)
    found = scan_bytes(data) if data is not None else scan_path(path)
    text = as_text(data)
    if not rel.endswith((".yaml", ".yml", ".json")):
        return RepoFile(rel, text, keys=found.keys, uninspectable=found.uninspectable)
    if data is None:
        too_large = found.uninspectable or f"larger than {MAX_BYTES // (1024 * 1024)} MiB, too large to parse"
        return RepoFile(rel, None, keys=found.keys, uninspectable=too_large)
    if text is None:
        return RepoFile(rel, None, keys=found.keys, uninspectable=found.uninspectable)
    known = (parsed or {}).get(rel)
    reuse = known is not None and known[0] == text and not rel.endswith(".json")  # the guard parses as YAML
    result = known[1] if known is not None and reuse else parse_file(rel, text)
    problem = found.uninspectable or (str(TooDeep(MAX_DEPTH)) if result.too_deep else None)
    return RepoFile(rel, text, result.docs, result.error, result.error_line, found.keys, problem)


def read_files(repo: Path, paths: Iterable[str], parsed: Mapping[str, tuple[str, ParsedFile]] | None = None) -> dict[str, RepoFile]:
    """Each of these files (what validate lists: scan.list_files) by path; parsed as in read_file."""
    return {rel: read_file(repo, rel, parsed) for rel in paths}
