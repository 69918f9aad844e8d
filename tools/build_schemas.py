#!/usr/bin/env python3
"""Build the offline JSON schemas that `fedgen validate` hands to kubeconform.

Run from anywhere: ``.venv/bin/python tools/build_schemas.py`` (``--check`` compares instead of writing).

Writes, under ``generator/fedgen/schemas/`` of this repository (package data; nothing else there):

* ``kubernetes/v<X.Y>/<kind><suffix>.json``: built-in kinds, converted from the ``vX.Y.0-local-strict`` schemas
  of the PyPI package kubernetes-validate (which ``$ref`` a shared ``_definitions.json``). Every reference is
  inlined, so each file stands alone; the few definitions that refer to themselves (JSONSchemaProps of
  CustomResourceDefinition, ...) cannot be inlined and are kept once in the file's own ``$defs``. Names follow
  kubeconform's ``{{.ResourceKind}}{{.KindSuffix}}.json``: kind lower-cased, suffix ``-<first label of the
  group>-<version>`` (``-<version>`` for the core group).
* ``crds/<group>/<kind>_<version>.json``: custom resources, from the datree CRDs-catalog copies and from the
  upstream Config Sync CRDs (converted here), laid out as kubeconform's
  ``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json``.
* ``README.md``: where every file came from, with versions and sha256.

Every schema gets the same treatment: ``description`` and ``x-kubernetes-*`` annotations dropped (they do not
take part in validation and are most of the bytes), ``additionalProperties: false`` on every object that
declares ``properties`` and says nothing about additional ones (the CRD roots included), OpenAPI ``nullable``
turned into a JSON Schema ``"null"`` type, compact JSON with sorted keys. The output depends only on the
inputs: same inputs, same bytes; a second run changes nothing.
"""

from __future__ import annotations

import argparse
import configparser
import copy
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# Kubernetes minor versions written, newest last. kubernetes-validate 1.37.0 ships 1.25 to 1.37; these are the
# ones GKE offers in its Rapid, Regular and Stable channels in 2026 (older ones only linger in Extended).
KUBERNETES_VERSIONS: tuple[str, ...] = ("1.33", "1.34", "1.35", "1.36", "1.37")
KUBERNETES_VALIDATE_VERSION = "1.37.0"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


# The shared CRD sources (see their SOURCES.md) are not in this repository; default_crd_sources finds them.
def default_crd_sources(repo_root: Path = REPO_ROOT) -> Path:
    """$FEDGEN_CRD_SOURCES if set; else the first of ../shared/crds beside this checkout and ../shared/crds beside
    the checkout it was cloned from (when its origin is a local folder: CI clones the working copy into a
    temporary folder) that holds CRD sources; else the first, which the error then names."""
    if "FEDGEN_CRD_SOURCES" in os.environ:
        return Path(os.environ["FEDGEN_CRD_SOURCES"])
    candidates = [repo_root.parent / "shared" / "crds"]
    origin = local_origin(repo_root)
    if origin is not None:
        candidates.append(origin.parent / "shared" / "crds")
    return next((c for c in candidates if holds_crd_sources(c)), candidates[0])


def holds_crd_sources(crd_root: Path) -> bool:
    return (crd_root / "catalog").is_dir()


def local_origin(repo_root: Path) -> Path | None:
    """The `origin` remote of the git checkout at repo_root when it is a folder on this machine, else None.

    Read from repo_root/.git/config itself: `git -C` would climb into an enclosing repository, and a URL
    (https, ssh, file://) is not a folder."""
    config = repo_root / ".git" / "config"
    if not config.is_file():
        return None
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(config.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError):
        return None
    url = parser.get('remote "origin"', "url", fallback="").strip()
    if not url.startswith("/"):
        return None
    return Path(url).resolve()


# (group, kind) taken from the datree catalog; every version the catalog has for them is written.
CATALOG_KINDS: tuple[tuple[str, str], ...] = (
    ("argoproj.io", "application"),
    ("argoproj.io", "applicationset"),
    ("argoproj.io", "appproject"),
    ("bitnami.com", "sealedsecret"),
    ("mutations.gatekeeper.sh", "assign"),
    ("mutations.gatekeeper.sh", "assignmetadata"),
    ("mutations.gatekeeper.sh", "modifyset"),
    ("networking.istio.io", "destinationrule"),
    ("networking.istio.io", "gateway"),
    ("networking.istio.io", "serviceentry"),
    ("networking.istio.io", "sidecar"),
    ("networking.istio.io", "virtualservice"),
    ("security.istio.io", "authorizationpolicy"),
    ("security.istio.io", "peerauthentication"),
)
# Upstream CRD manifests converted here (the catalog has no configsync.gke.io schemas).
CRD_YAML_FILES: tuple[str, ...] = ("config-sync/rootsync-crd.yaml", "config-sync/reposync-crd.yaml")

MANAGED_DIRS = ("kubernetes", "crds")
MANIFEST = "README.md"

# JSON Schema keywords whose value is a subschema, a list of subschemas, or a map of name -> subschema.
# Everything else (enum, default, required, examples, ...) is data and is never walked into.
_SCHEMA_KEYWORDS = frozenset(
    {
        "additionalProperties",
        "additionalItems",
        "items",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
_SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DROPPED_KEYWORDS = frozenset({"description", "$schema", "$id", "$comment"})


class BuildError(Exception):
    """The inputs are not what this script expects."""


# --------------------------------------------------------------------------------------------- schema walking


def _subschemas(node: dict[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of node with fn applied to each direct subschema (keyword-aware; data keywords are copied)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_KEYWORDS and isinstance(value, (dict, list)):
            out[key] = [fn(v) for v in value] if isinstance(value, list) else fn(value)
        elif key in _SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            out[key] = [fn(v) for v in value]
        elif key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            out[key] = {name: fn(v) for name, v in value.items()}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _iter_subschemas(node: Any) -> Iterable[Any]:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _SCHEMA_KEYWORDS and isinstance(value, dict):
            yield value
        elif (key in _SCHEMA_KEYWORDS or key in _SCHEMA_LIST_KEYWORDS) and isinstance(value, list):
            yield from value
        elif key in _SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            yield from value.values()


@dataclass
class Stats:
    strict_added: int = 0
    nullable_converted: int = 0
    int_or_string_converted: int = 0
    root_fields_added: int = 0


def _clean(node: dict[str, Any], stats: Stats) -> dict[str, Any]:
    """Apply the local (non-recursive) part of the common treatment to one schema object."""
    out = {k: v for k, v in node.items() if k not in _DROPPED_KEYWORDS and not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string") is True and not ({"type", "anyOf", "oneOf"} & out.keys()):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        stats.int_or_string_converted += 1
    if out.get("format") == "int-or-string" and not ({"type", "anyOf", "oneOf"} & out.keys()):
        del out["format"]
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        stats.int_or_string_converted += 1
    if node.get("x-kubernetes-embedded-resource") is True and isinstance(out.get("properties"), dict):
        props = dict(out["properties"])
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        out["properties"] = props
    if "nullable" in out:
        nullable = out.pop("nullable")
        if nullable is True:
            stats.nullable_converted += 1
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif isinstance(kind, list) and "null" not in kind:
                out["type"] = [*kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
        stats.strict_added += 1
    return out


def normalize_crd_schema(schema: dict[str, Any], stats: Stats) -> dict[str, Any]:
    """The common treatment of a self-contained schema (no external references)."""

    def walk(node: Any) -> Any:
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise BuildError(f"external reference {ref!r} in a CRD schema")
        return _subschemas(_clean(node, stats), walk)

    out = walk(schema)
    # Every custom resource may carry apiVersion, kind and metadata whether its schema says so or not (the
    # Istio conversions leave them out); with a strict root they must be declared.
    props = out.get("properties")
    if not isinstance(props, dict):
        raise BuildError("a CRD schema without root properties")
    implicit_fields = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    for name, implicit in implicit_fields.items():
        if name not in props:
            props[name] = implicit
            stats.root_fields_added += 1
    # The API server always checks a custom resource's metadata as ObjectMeta (a CRD schema may only narrow
    # name and generateName), so a CRD's own metadata schema must not forbid labels or annotations.
    props["metadata"] = {k: v for k, v in props["metadata"].items() if k != "additionalProperties"}
    out["properties"] = dict(sorted(props.items()))
    return out


# ------------------------------------------------------------------------------------------- built-in kinds


def _ref_name(ref: str) -> str:
    prefix = "#/$defs/"
    _, sep, fragment = ref.partition("#")
    if not sep or not ("#" + fragment).startswith(prefix):
        raise BuildError(f"unexpected reference {ref!r}")
    return ("#" + fragment)[len(prefix) :]


def _refs_of(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("$ref")
            if isinstance(ref, str):
                found.add(_ref_name(ref))
            stack.extend(_iter_subschemas(cur))
    return found


def _recursive_definitions(defs: dict[str, Any]) -> frozenset[str]:
    """Names of definitions that can reach themselves through references."""
    graph = {name: _refs_of(schema) for name, schema in defs.items()}
    recursive = set()
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            name = stack.pop()
            if name == start:
                recursive.add(start)
                break
            if name in seen or name not in graph:
                continue
            seen.add(name)
            stack.extend(graph[name])
    return frozenset(recursive)


class BuiltinConverter:
    """Inline the references of one kubernetes-validate version folder (memoized per definition)."""

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.defs = definitions
        self.recursive = _recursive_definitions(definitions)
        self.stats = Stats()
        self._memo: dict[str, Any] = {}

    def _walk(self, node: Any, used: set[str]) -> Any:
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        ref = node.get("$ref")
        if isinstance(ref, str):
            siblings = {k for k in node if k != "$ref" and k not in _DROPPED_KEYWORDS and not k.startswith("x-kubernetes-")}
            if siblings:
                raise BuildError(f"$ref {ref!r} has siblings {sorted(siblings)}; not handled")
            name = _ref_name(ref)
            if name not in self.defs:
                raise BuildError(f"dangling reference {ref!r}")
            if name in self.recursive:
                used.add(name)
                return {"$ref": f"#/$defs/{name}"}
            return self._inline(name, used)
        return _subschemas(_clean(node, self.stats), lambda v: self._walk(v, used))

    def _inline(self, name: str, used: set[str]) -> Any:
        if name not in self._memo:
            inner: set[str] = set()
            self._memo[name] = (self._walk(self.defs[name], inner), frozenset(inner))
        schema, inner_used = self._memo[name]
        used.update(inner_used)
        return schema

    def convert(self, kind_schema: dict[str, Any]) -> dict[str, Any]:
        used: set[str] = set()
        out = self._walk(kind_schema, used)
        local: dict[str, Any] = {}
        pending = sorted(used)
        while pending:
            name = pending.pop()
            if name in local:
                continue
            more: set[str] = set()
            local[name] = _subschemas(_clean(self.defs[name], self.stats), lambda v: self._walk(v, more))  # noqa: B023 - called within this iteration
            pending.extend(sorted(more - local.keys()))
        if local:
            out["$defs"] = dict(sorted(local.items()))
        out["$schema"] = DRAFT_2020_12
        return out


def kind_suffix(group: str, version: str) -> str:
    """kubeconform's {{.KindSuffix}} for an apiVersion: -<first label of group>-<version>, or -<version>."""
    if not group:
        return f"-{version.lower()}"
    return f"-{group.split('.')[0].lower()}-{version.lower()}"


def builtin_file_name(group: str, version: str, kind: str) -> str:
    return f"{kind.lower()}{kind_suffix(group, version)}.json"


# ----------------------------------------------------------------------------------------------- output


def dump_json(schema: Any) -> bytes:
    return (json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the schemas dir, with forward slashes
    data: bytes
    source: str  # human-readable origin
    source_sha256: str
    what: str  # apiVersion and kind


def kubernetes_validate_root() -> Path:
    try:
        import kubernetes_validate  # noqa: PLC0415 (only the build needs it)
    except ImportError as exc:  # pragma: no cover - environment problem
        raise BuildError(f"the PyPI package kubernetes-validate is not installed (pip install 'kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}')") from exc
    installed = importlib.metadata.version("kubernetes-validate")
    if installed != KUBERNETES_VALIDATE_VERSION:
        raise BuildError(
            f"kubernetes-validate {installed} is installed; this script is pinned to {KUBERNETES_VALIDATE_VERSION}"
            " (update KUBERNETES_VALIDATE_VERSION deliberately, then regenerate and review the diff)"
        )
    return Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"


def build_builtin(version: str, source_root: Path) -> tuple[list[Entry], dict[str, Any]]:
    folder = source_root / f"v{version}.0-local-strict"
    defs_path = folder / "_definitions.json"
    if not defs_path.is_file():
        raise BuildError(f"{folder} not found: kubernetes-validate {KUBERNETES_VALIDATE_VERSION} does not ship {version}")
    defs_bytes = defs_path.read_bytes()
    definitions = json.loads(defs_bytes)["$defs"]
    converter = BuiltinConverter(definitions)
    entries: list[Entry] = []
    names: dict[str, str] = {}
    skipped_lists = 0
    for src in sorted(folder.glob("*.json")):
        if src.name.startswith("_") or src.name == "all.json":
            continue
        raw = src.read_bytes()
        schema = json.loads(raw)
        gvks = schema.get("x-kubernetes-group-version-kind")
        # Only top-level kinds; meta types that belong to every group (DeleteOptions, WatchEvent) and the
        # typed lists (DeploymentList, ...) never appear in a GitOps repository.
        if not isinstance(gvks, list) or len(gvks) != 1:
            continue
        gvk = gvks[0]
        group, ver, kind = gvk["group"], gvk["version"], gvk["kind"]
        if kind.endswith("List"):
            skipped_lists += 1
            continue
        name = builtin_file_name(group, ver, kind)
        api_version = f"{group}/{ver}" if group else ver
        if name in names:
            raise BuildError(f"{name}: both {names[name]} and {api_version} {kind} map to it")
        names[name] = f"{api_version} {kind}"
        data = dump_json(converter.convert(schema))
        entries.append(
            Entry(
                path=f"kubernetes/v{version}/{name}",
                data=data,
                source=f"kubernetes_validate/kubernetes-json-schema/v{version}.0-local-strict/{src.name}",
                source_sha256=sha256(raw),
                what=f"{api_version} {kind}",
            )
        )
    info = {
        "version": version,
        "definitions_sha256": sha256(defs_bytes),
        "recursive": sorted({n for e in entries for n in json.loads(e.data).get("$defs", {})}),
        "lists_skipped": skipped_lists,
        "strict_added": converter.stats.strict_added,
    }
    return entries, info


def build_crds(crd_root: Path) -> tuple[list[Entry], Stats]:
    from ruamel.yaml import YAML  # noqa: PLC0415 (a fedgen dependency)

    stats = Stats()
    entries: list[Entry] = []
    catalog = crd_root / "catalog"
    for group, kind in CATALOG_KINDS:
        files = sorted((catalog / group).glob(f"{kind}_*.json"))
        if not files:
            raise BuildError(f"no catalog schema for {group} {kind} in {catalog / group}")
        for src in files:
            raw = src.read_bytes()
            version = src.stem.split("_", 1)[1]
            data = dump_json(normalize_crd_schema(json.loads(raw), stats))
            entries.append(
                Entry(
                    path=f"crds/{group}/{src.name}",
                    data=data,
                    source=f"catalog/{group}/{src.name} (datree/CRDs-catalog)",
                    source_sha256=sha256(raw),
                    what=f"{group}/{version} {kind}",
                )
            )
    yaml = YAML(typ="safe", pure=True)
    for rel in CRD_YAML_FILES:
        src = crd_root / rel
        raw = src.read_bytes()
        for doc in yaml.load_all(raw.decode("utf-8")):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for ver in spec["versions"]:
                if not ver.get("served"):
                    continue
                schema = ver["schema"]["openAPIV3Schema"]
                data = dump_json(normalize_crd_schema(schema, stats))
                entries.append(
                    Entry(
                        path=f"crds/{group}/{kind.lower()}_{ver['name']}.json",
                        data=data,
                        source=f"{rel} (openAPIV3Schema of served version {ver['name']})",
                        source_sha256=sha256(raw),
                        what=f"{group}/{ver['name']} {kind}",
                    )
                )
    paths = [e.path for e in entries]
    if len(paths) != len(set(paths)):
        raise BuildError("two CRD schemas map to the same file")
    return entries, stats


def _size(entries: Iterable[Entry]) -> int:
    return sum(len(e.data) for e in entries)


def render_manifest(builtins: dict[str, list[Entry]], infos: dict[str, dict[str, Any]], crds: list[Entry], crd_stats: Stats) -> bytes:
    lines: list[str] = []
    add = lines.append
    all_entries = [e for v in builtins.values() for e in v] + crds
    unique = {sha256(e.data): len(e.data) for e in all_entries}
    add("# Offline schemas for `fedgen validate` (kubeconform)")
    add("")
    add("Generated by `tools/build_schemas.py`; do not edit by hand. Regenerate with")
    add("`.venv/bin/python tools/build_schemas.py` and check with `--check` (the test suite does).")
    add("The script manages `kubernetes/`, `crds/` and this file only; other files in `schemas/` are not its.")
    add("")
    add("kubeconform templates (what `fedgen.validate.kubeconform` passes, CRDs first):")
    add("")
    add("- `schemas/crds/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`")
    add("- `schemas/kubernetes/v<X.Y>/{{.ResourceKind}}{{.KindSuffix}}.json`")
    add("")
    add("## Treatment (all files)")
    add("")
    add("- Standalone: no reference leaves a file. Built-in definitions are inlined; the definitions that refer to")
    add("  themselves (listed per version below) are kept once in the file's own `$defs`.")
    add("- Strict: `additionalProperties: false` on every object that declares `properties` and leaves")
    add("  `additionalProperties` unsaid, so unknown fields (typos) are errors. The kubernetes-validate")
    add("  `-local-strict` schemas already are; the catalog CRD schemas were strict except at the root (now strict")
    add("  too, with the implicit `apiVersion`, `kind` and `metadata` declared where a catalog schema leaves them")
    add("  out); the Config Sync CRDs are converted with the same rule. Objects marked")
    add("  `x-kubernetes-preserve-unknown-fields` without `properties` (free-form values) stay open.")
    add("- `description`, `$id`, `$comment` and `x-kubernetes-*` annotations dropped: they take no part in")
    add("  validation (CEL `x-kubernetes-validations` rules are not evaluated by kubeconform anyway) and were about")
    add('  three quarters of the bytes. OpenAPI `nullable: true` becomes a `"null"` type;')
    add("  `x-kubernetes-int-or-string` without a type becomes `anyOf: [integer, string]`.")
    add("- Compact JSON, sorted keys, ASCII, one trailing newline.")
    add("- Built-in kinds: every top-level kind of each version except the typed lists (`DeploymentList`, ...) and")
    add("  the meta types shared by all groups (`DeleteOptions`, `WatchEvent`). kubeconform expands `kind: List`")
    add("  itself. A kind or apiVersion without a file here is reported as `no-schema`.")
    add("")
    add("## Sizes")
    add("")
    add("| set | files | bytes |")
    add("| --- | ---: | ---: |")
    for version, entries in builtins.items():
        add(f"| `kubernetes/v{version}` | {len(entries)} | {_size(entries)} |")
    add(f"| `crds` | {len(crds)} | {_size(crds)} |")
    add(f"| total | {len(all_entries)} | {_size(all_entries)} |")
    add(f"| distinct contents (what git stores) | {len(unique)} | {sum(unique.values())} |")
    add("")
    add("## Built-in kinds")
    add("")
    add(
        f"Source: PyPI `kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}`, folder"
        " `kubernetes_validate/kubernetes-json-schema/vX.Y.0-local-strict/` (Apache-2.0), each kind file"
        " resolved against that folder's `_definitions.json`."
    )
    add("")
    for version, entries in builtins.items():
        info = infos[version]
        add(f"### Kubernetes {version}")
        add("")
        add(f"- `_definitions.json` sha256 `{info['definitions_sha256']}`")
        recursive = ", ".join(f"`{n}`" for n in info["recursive"]) or "none"
        add(f"- self-referencing definitions kept in `$defs`: {recursive}")
        add("")
        add("| file | kind | source file sha256 | output sha256 |")
        add("| --- | --- | --- | --- |")
        for e in entries:
            add(f"| `{e.path}` | {e.what} | `{e.source_sha256}` | `{sha256(e.data)}` |")
        add("")
    add("## Custom resources")
    add("")
    add(
        "Sources: `../shared/crds/` (see its SOURCES.md for upstream repositories, commits and licences): the"
        " datree CRDs-catalog conversions (MIT) of Argo CD, Sealed Secrets, Gatekeeper and Istio CRDs"
        " (Apache-2.0), and the upstream Config Sync CRD manifests (Apache-2.0), converted here from the"
        " `openAPIV3Schema` of each served version."
    )
    add("")
    add(
        f"Changes made by the treatment: `additionalProperties: false` added {crd_stats.strict_added} times,"
        f" `nullable` converted {crd_stats.nullable_converted} times,"
        f" int-or-string converted {crd_stats.int_or_string_converted} times, implicit root fields"
        f" (apiVersion, kind, metadata) declared {crd_stats.root_fields_added} times."
    )
    add("")
    add("| file | kind | source | source sha256 | output sha256 |")
    add("| --- | --- | --- | --- | --- |")
    for e in crds:
        add(f"| `{e.path}` | {e.what} | `{e.source}` | `{e.source_sha256}` | `{sha256(e.data)}` |")
    add("")
    return "\n".join(lines).encode()


def build(crd_root: Path, versions: Iterable[str] = KUBERNETES_VERSIONS) -> dict[str, bytes]:
    """Everything the script writes, as {relative path: bytes}."""
    if not holds_crd_sources(crd_root):
        raise BuildError(f"CRD sources not found at {crd_root} (pass --crd-sources or set FEDGEN_CRD_SOURCES)")
    source_root = kubernetes_validate_root()
    builtins: dict[str, list[Entry]] = {}
    infos: dict[str, dict[str, Any]] = {}
    for version in sorted(versions, key=lambda v: tuple(int(p) for p in v.split("."))):
        builtins[version], infos[version] = build_builtin(version, source_root)
    crds, crd_stats = build_crds(crd_root)
    files = {e.path: e.data for entries in builtins.values() for e in entries}
    files.update({e.path: e.data for e in crds})
    files[MANIFEST] = render_manifest(builtins, infos, crds, crd_stats)
    return files


def existing_files(schemas_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for sub in MANAGED_DIRS:
        base = schemas_dir / sub
        if base.is_dir():
            for path in base.rglob("*"):
                if path.is_file():
                    found[path.relative_to(schemas_dir).as_posix()] = path
    if (schemas_dir / MANIFEST).is_file():
        found[MANIFEST] = schemas_dir / MANIFEST
    return found


def differences(files: dict[str, bytes], schemas_dir: Path) -> list[str]:
    """Relative paths that differ between files and schemas_dir (missing, extra or changed)."""
    present = existing_files(schemas_dir)
    diff = sorted(set(present) ^ set(files))
    diff += sorted(p for p in set(present) & set(files) if present[p].read_bytes() != files[p])
    return sorted(diff)


def write(files: dict[str, bytes], schemas_dir: Path) -> tuple[int, int]:
    """Make schemas_dir's managed part equal files. Returns (written, removed)."""
    written = removed = 0
    for rel, data in sorted(files.items()):
        target = schemas_dir / rel
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written += 1
    for rel, path in sorted(existing_files(schemas_dir).items()):
        if rel not in files:
            path.unlink()
            removed += 1
    for sub in MANAGED_DIRS:
        base = schemas_dir / sub
        if base.is_dir():
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                if not any(d.iterdir()):
                    d.rmdir()
    return written, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "generator" / "fedgen" / "schemas", help="schemas directory (default: %(default)s)")
    parser.add_argument(
        "--crd-sources",
        type=Path,
        default=default_crd_sources(),
        help="folder with catalog/ and config-sync/ (default: $FEDGEN_CRD_SOURCES, else ../shared/crds beside this"
        " checkout or beside the local checkout it was cloned from: %(default)s)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output would change")
    args = parser.parse_args(argv)
    try:
        files = build(args.crd_sources)
    except BuildError as exc:
        print(f"build_schemas: {exc}", file=sys.stderr)
        return 2
    if args.check:
        diff = differences(files, args.out)
        for rel in diff:
            print(f"differs: {rel}")
        return 1 if diff else 0
    written, removed = write(files, args.out)
    total = sum(len(d) for d in files.values())
    print(f"{args.out}: {len(files)} files, {total} bytes; {written} written, {removed} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
