"""What a kustomization may make kustomize read, checked before kustomize runs on a hostile repository.

From a sync root, every kustomization it reaches is read and every path it names is checked: resources,
bases, components, crds, configurations, patches (path), patchesStrategicMerge, patchesJson6902 (path),
replacements (path), openapi (path), configMapGenerator/secretGenerator files (also `key=path`), envs and
env, and generators/transformers/validators (a path, or an inline configuration). Each must be a relative
path to a file (or folder) of the repository as validate lists it (what git would commit; never the state
or .git), with no symbolic link on the way and nothing that reads as a URL or remote base. Helm charts and
plugins other than kustomize's builtin ones are refused outright. Keys are matched case-insensitively, as
kustomize's JSON decoding matches them.

A root with any refusal is not built. The walk also yields the repo files the root pulls in (to map built
objects to their source). Pure apart from reading the kustomization files and lstat.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedgen.validate.yamlsource import ParsedFile, YamlDoc, load_all_plain, parse_yaml, pointer

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MAX_NESTING = 64  # kustomizations including kustomizations
MAX_KUSTOMIZATION_BYTES = 1024 * 1024
HELM_FIELDS = ("helmcharts", "helmglobals", "helmchartinflationgenerator")
PLUGIN_FIELDS = ("generators", "transformers", "validators")
FILE_LIST_FIELDS = ("crds", "configurations")
DIR_OR_FILE_FIELDS = ("resources", "bases")
GENERATOR_FIELDS = ("configmapgenerator", "secretgenerator")
# Keys of builtin plugin configurations that name files (PatchTransformer path, PatchStrategicMergeTransformer
# paths, ConfigMapGenerator files/envs/env, ReplacementTransformer replacements[].path, ...).
CONFIG_PATH_KEYS = ("path", "paths", "files", "envs", "env")
BUILTIN_API_VERSION = "builtin"
FUNCTION_ANNOTATIONS = ("config.kubernetes.io/function", "config.k8s.io/function")
# A first path component that reads as a host name (example.com, github.com): older kustomize releases took
# such paths for remote repositories.
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")


Where = tuple[str, "YamlDoc | None", str]  # (repo file, its document when parsed, JSON pointer of the entry)


@dataclass(frozen=True)
class Refusal:
    path: str  # the repo file naming the entry (a kustomization or a plugin configuration)
    line: int | None
    pointer: str  # JSON pointer of the entry in that file
    message: str


@dataclass(frozen=True)
class RootCheck:
    refusals: tuple[Refusal, ...] = ()
    reachable: frozenset[str] = frozenset()  # repo files the root pulls in (kustomizations included)

    @property
    def buildable(self) -> bool:
        return not self.refusals


def kustomization_file(repo: Path, folder: str) -> str | None:
    """The repo path of the kustomization file directly in a folder (symbolic links included, so the check can
    refuse them), or None."""
    for name in KUSTOMIZATION_FILES:
        rel = name if folder in ("", ".") else f"{folder}/{name}"
        try:
            os.lstat(repo / rel)
        except OSError:
            continue
        return rel
    return None


def _fields(data: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    """(key as written, value) of every key equal to name ignoring case."""
    for key, value in data.items():
        if str(key).lower() == name:
            yield str(key), value


def _remote(entry: str) -> bool:
    """Whether kustomize could take the entry for a remote file or base (scheme://, git::, scp-like
    user@host:path, github.com/org/repo, ?ref=, repo//dir): any colon, query, '//', user@ or host-like first
    component is refused outright, whatever the kustomize version."""
    lowered = entry.strip().lower().lstrip("/")
    first = lowered.split("/", 1)[0]
    return ":" in lowered or "?" in lowered or "//" in lowered or "@" in first or ("/" in lowered and _HOST.match(first) is not None)


def _inline(entry: str) -> list[Any] | None:
    """The documents of an entry that kustomize reads as inline YAML (a mapping), or None for a path."""
    if "\n" not in entry and not entry.lstrip().startswith("{"):
        return None
    try:
        docs = load_all_plain(entry)
    except Exception:  # noqa: BLE001 - not YAML: kustomize takes it for a path
        return None
    return docs if docs and all(isinstance(d, dict) for d in docs) else None


Parsed = dict[str, tuple[str, ParsedFile]]  # repo file -> (its text when parsed, what parse_yaml made of it)


class _Walk:
    def __init__(self, repo: Path, listed: frozenset[str], listed_dirs: frozenset[str], parsed: Parsed, modes: dict[str, int | None]) -> None:
        self.repo = repo
        self.listed = listed
        self.listed_dirs = listed_dirs
        self.parsed = parsed
        self.modes = modes  # repo path -> its lstat mode (None: missing), shared by the walks of one check
        self.refusals: list[Refusal] = []
        self.reachable: set[str] = set()
        self.seen: set[tuple[str, str | None]] = set()

    # ------------------------------------------------------------------------------------------ paths

    def _symlink_on_the_way(self, rel: str) -> str | None:
        """The first component of rel that is a symbolic link; '' when rel does not exist (kustomize reports
        a missing file itself); None when every component is a real file or folder."""
        parts = rel.split("/")
        for n in range(1, len(parts) + 1):
            walked = "/".join(parts[:n])
            if walked in self.modes:
                mode = self.modes[walked]
            else:
                try:
                    mode = os.lstat(self.repo / walked).st_mode
                except OSError:
                    mode = None
                self.modes[walked] = mode
            if mode is None:
                return ""
            if stat.S_ISLNK(mode):
                return walked
        return None

    def target(self, entry: Any, folder: str, where: Where, *, folder_ok: bool, what: str) -> tuple[str, bool] | None:
        """Check one path entry; (repo path, is a folder) when kustomize may read it and it exists."""
        if not isinstance(entry, str) or not entry.strip():
            return None
        if _remote(entry):
            self.refuse(
                where,
                f"{what} {entry!r} reads as a URL or remote base: validate fetches nothing, and Config Sync would apply whatever it serves; vendor the files into the repository",
            )
            return None
        if entry.startswith("/"):
            self.refuse(where, f"{what} {entry!r} is an absolute path: validate reads only files of the repository, named by relative paths")
            return None
        rel = posixpath.normpath(posixpath.join(folder, entry))
        if rel == ".." or rel.startswith("../"):
            self.refuse(where, f"{what} {entry!r} leads outside the repository")
            return None
        link = self._symlink_on_the_way(rel) if rel != "." else None
        if link:
            self.refuse(where, f"{what} {entry!r} passes through the symbolic link {link}")
            return None
        if link == "":
            return None  # missing: kustomize says so (FG502)
        if rel == "." or rel in self.listed_dirs:
            if folder_ok:
                return rel, True
            self.refuse(where, f"{what} {entry!r} is a folder where a file is expected")
            return None
        if rel not in self.listed:
            self.refuse(where, f"{what} {entry!r} is not a file of the repository (ignored by git, under .fedgen/state, or not a regular file)")
            return None
        return rel, False

    def refuse(self, where: Where, message: str) -> None:
        path, doc, ptr = where
        self.refusals.append(Refusal(path, doc.line_of(ptr) if doc is not None else None, ptr, message))

    # ------------------------------------------------------------------------------------ kustomizations

    def folder(self, folder: str, depth: int, *, configs: str | None, where: Where) -> None:
        """A folder kustomize builds; configs: when the files it pulls in are plugin configurations, the folder
        their paths are resolved against."""
        if (folder, configs) in self.seen:
            return
        self.seen.add((folder, configs))
        if depth > MAX_NESTING:
            self.refuse(where, f"kustomizations nest deeper than {MAX_NESTING} levels")
            return
        rel = kustomization_file(self.repo, folder)
        if rel is None:
            return  # kustomize says there is nothing to build (FG501/FG502)
        kwhere = (rel, None, "")
        if self.target(posixpath.basename(rel), folder, kwhere, folder_ok=False, what="kustomization") is None:
            return
        self.reachable.add(rel)
        doc = self._read(rel)
        if doc is None or not isinstance(doc.data, dict):
            return
        self.kustomization(rel, folder, doc, depth, configs=configs)

    def _read(self, rel: str) -> YamlDoc | None:
        try:
            with (self.repo / rel).open("rb") as fh:
                raw = fh.read(MAX_KUSTOMIZATION_BYTES + 1)
        except OSError as exc:
            self.refuse((rel, None, ""), f"cannot be read ({exc.strerror})")
            return None
        if len(raw) > MAX_KUSTOMIZATION_BYTES:
            self.refuse((rel, None, ""), f"is larger than {MAX_KUSTOMIZATION_BYTES // 1024} KiB; not checked, not built")
            return None
        text = raw.decode("utf-8", "replace")
        known = self.parsed.get(rel)
        if known is not None and known[0] == text:  # read again (another root, a spec's check): same text, same parse
            parsed = known[1]
        else:
            parsed = parse_yaml(rel, text)
            self.parsed[rel] = (text, parsed)
        if parsed.error:
            self.refusals.append(Refusal(rel, parsed.error_line, "", f"cannot be checked, so it is not built: {parsed.error}"))
            return None
        if len(parsed.docs) > 1:
            self.refusals.append(Refusal(rel, parsed.docs[1].line, "", "holds more than one YAML document; not checked, not built"))
            return None
        return parsed.docs[0] if parsed.docs else None

    def kustomization(self, rel: str, folder: str, doc: YamlDoc, depth: int, *, configs: str | None) -> None:
        data: dict[str, Any] = doc.data

        def at(*tokens: object) -> Where:
            return rel, doc, pointer(*tokens)

        for key, _ in [kv for name in HELM_FIELDS for kv in _fields(data, name)]:
            self.refuse(at(key), f"{key} runs helm: validate builds no Helm chart; render the chart into the repository")
        for name in (*DIR_OR_FILE_FIELDS, "components"):
            for key, entries in _fields(data, name):
                for i, entry in enumerate(_list(entries)):
                    found = self.target(entry, folder, at(key, i), folder_ok=True, what=f"{key} entry")
                    self._pulled(found, depth, configs=configs, where=at(key, i))
        for name in FILE_LIST_FIELDS:
            for key, entries in _fields(data, name):
                for i, entry in enumerate(_list(entries)):
                    self._file(self.target(entry, folder, at(key, i), folder_ok=False, what=f"{key} entry"))
        for key, entries in _fields(data, "patchesstrategicmerge"):
            for i, entry in enumerate(_list(entries)):
                if not (isinstance(entry, str) and _inline_object(entry)):
                    self._file(self.target(entry, folder, at(key, i), folder_ok=False, what=f"{key} entry"))
        for name in ("patches", "patchesjson6902", "replacements"):
            for key, entries in _fields(data, name):
                for i, entry in enumerate(_list(entries)):
                    if isinstance(entry, dict):
                        for pkey, value in _fields(entry, "path"):
                            self._file(self.target(value, folder, at(key, i, pkey), folder_ok=False, what=f"{key} path"))
                    elif isinstance(entry, str) and not _inline_object(entry):
                        self._file(self.target(entry, folder, at(key, i), folder_ok=False, what=f"{key} entry"))
        for key, value in _fields(data, "openapi"):
            if isinstance(value, dict):
                for pkey, path in _fields(value, "path"):
                    self._file(self.target(path, folder, at(key, pkey), folder_ok=False, what="openapi path"))
        for name in GENERATOR_FIELDS:
            for key, generators in _fields(data, name):
                for i, generator in enumerate(_list(generators)):
                    if isinstance(generator, dict):
                        self._generator_sources(generator, folder, lambda *t, k=key, n=i: at(k, n, *t))
        for name in PLUGIN_FIELDS:
            for key, entries in _fields(data, name):
                for i, entry in enumerate(_list(entries)):
                    self._plugin_entry(entry, folder, depth, at(key, i), key)

    def _generator_sources(self, generator: Mapping[str, Any], folder: str, at: Callable[..., Where]) -> None:
        for key, value in [kv for name in ("files", "envs", "env") for kv in _fields(generator, name)]:
            items = [value] if isinstance(value, str) else _list(value)
            for j, item in enumerate(items):
                where = at(key) if isinstance(value, str) else at(key, j)
                if isinstance(item, str) and key.lower() == "files" and "=" in item:
                    item = item.split("=", 1)[1]  # key=path
                self._file(self.target(item, folder, where, folder_ok=False, what=f"{key} entry"))

    def _pulled(self, found: tuple[str, bool] | None, depth: int, *, configs: str | None, where: Where) -> None:
        if found is None:
            return
        rel, is_folder = found
        if is_folder:
            self.folder(rel, depth + 1, configs=configs, where=where)
        else:
            self.reachable.add(rel)
            if configs is not None:
                self._config_file(rel, configs)

    def _file(self, found: tuple[str, bool] | None) -> None:
        if found is not None:
            self.reachable.add(found[0])

    # ----------------------------------------------------------------------------------------- plugins

    def _plugin_entry(self, entry: Any, folder: str, depth: int, where: Where, key: str) -> None:
        """A generators/transformers/validators entry: inline configuration, a file of them, or a folder whose
        build yields them. kustomize resolves the paths they name against the kustomization naming the entry."""
        if not isinstance(entry, str):
            return
        docs = _inline(entry)
        if docs is not None:
            for data in docs:
                self._config(data, folder, where, inline=True)
            return
        found = self.target(entry, folder, where, folder_ok=True, what=f"{key} entry")
        if found is not None and found[1]:
            self.folder(found[0], depth + 1, configs=folder, where=where)
        elif found is not None:
            self.reachable.add(found[0])
            self._config_file(found[0], folder)

    def _config_file(self, rel: str, base: str) -> None:
        doc = self._read(rel)
        if doc is not None:
            self._config(doc.data, base, (rel, doc, ""), inline=False)

    def _config(self, data: Any, base: str, where: Where, *, inline: bool) -> None:
        """A plugin configuration: only kustomize's builtin plugins, and the files they name checked."""
        path, doc, _ = where
        mapping = data if isinstance(data, dict) else {}
        metadata = mapping.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        api_version, kind = mapping.get("apiVersion"), mapping.get("kind")
        if api_version != BUILTIN_API_VERSION or (isinstance(annotations, dict) and any(a in annotations for a in FUNCTION_ANNOTATIONS)):
            self.refuse(where, f"plugin {api_version}/{kind}: validate runs no plugin or function, only kustomize's builtin generators and transformers")
            return
        if str(kind).lower() == "helmchartinflationgenerator":
            self.refuse(where, "HelmChartInflationGenerator runs helm: validate builds no Helm chart; render the chart into the repository")
            return
        for ptr, key, value in _path_values(mapping):
            if key == "files" and "=" in value:
                value = value.split("=", 1)[1]  # key=path
            at = where if inline else (path, doc, ptr)
            self._file(self.target(value, base, at, folder_ok=False, what=f"plugin configuration {key}"))


def _path_values(data: Any) -> Iterator[tuple[str, str, str]]:
    """(pointer, lower-cased key, value) of every string under a key of CONFIG_PATH_KEYS (or in a list under
    one), anywhere in a plugin configuration."""
    stack: list[tuple[Any, tuple[Any, ...], str | None]] = [(data, (), None)]
    while stack:
        node, where, named = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                lowered = str(key).lower()
                stack.append((value, (*where, key), lowered if lowered in CONFIG_PATH_KEYS else None))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                stack.append((value, (*where, i), named))
        elif named is not None and isinstance(node, str):
            yield pointer(*where), named, node


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _inline_object(entry: str) -> bool:
    """An inline patch: YAML of mappings that name a kind (kustomize tries inline first, then a path)."""
    docs = _inline(entry)
    return bool(docs) and all("kind" in d for d in docs or ())


def listed_folders(listed: frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for rel in listed:
        parent = posixpath.dirname(rel)
        while parent and parent not in out:
            out.add(parent)
            parent = posixpath.dirname(parent)
    return frozenset(out)


@dataclass
class Guard:
    """Checks sync roots against the files validate lists (a cache per process of one validation)."""

    repo: Path
    listed: frozenset[str]
    listed_dirs: frozenset[str] = field(init=False)
    # Every file a check parsed, with its text: the repo's file reader reuses them (collect/files.py).
    parsed: Parsed = field(init=False, default_factory=dict)
    modes: dict[str, int | None] = field(init=False, default_factory=dict)  # lstat of the paths the checks met

    def __post_init__(self) -> None:
        self.listed_dirs = listed_folders(self.listed)

    def file_problem(self, entry: str, folder: str = ".") -> str | None:
        """Why validate may not read this file (entry relative to folder), or None (also when it is missing:
        the reader says so)."""
        walk = _Walk(self.repo, self.listed, self.listed_dirs, self.parsed, self.modes)
        walk.target(entry, folder, ("", None, ""), folder_ok=False, what="path")
        return walk.refusals[0].message if walk.refusals else None

    def check(self, folder: str) -> RootCheck:
        walk = _Walk(self.repo, self.listed, self.listed_dirs, self.parsed, self.modes)
        where = (folder, None, "")
        found = walk.target(folder, ".", where, folder_ok=True, what="sync root")
        if found is not None:
            walk.folder(found[0], 0, configs=None, where=where)
        refusals = sorted(set(walk.refusals), key=lambda r: (r.path, r.line or 0, r.pointer, r.message))
        return RootCheck(tuple(refusals), frozenset(walk.reachable))
