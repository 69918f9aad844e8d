"""Schema validation of Kubernetes manifests with kubeconform, offline, against the schemas in ``schemas/``.

``validate_manifests`` splits a YAML stream into its documents, hands each to the real kubeconform binary
(``-strict -output json -summary -verbose``) with two local ``-schema-location`` templates (custom resources
from ``schemas/crds/``, built-in kinds from ``schemas/kubernetes/v<X.Y>/``; nothing is ever fetched), parses
kubeconform's JSON (never its exit code) and returns one ``SchemaResult`` per object, sorted by document.

Document numbering follows YAML: ``document_index`` is the position of the document in the stream as
``yaml.safe_load_all`` counts them, empty documents included (they produce no result). A ``kind: List``
document yields one result per item, all with the List's index. The stream is split by manifest_stream.py.

``validate_documents`` takes documents already split (``fedgen validate`` passes one JSON text per built
object), so nothing is parsed twice. kubeconform reads each document from a file of its own, except JSON
documents that name one object: those are grouped a few to a file, no identity twice in one, and each verdict
is mapped back by file and identity (when that mapping is not one verdict per document, the batch is run again
a file per document).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgen.errors import ExternalError, InputError
from fedgen.executables import find_tool
from fedgen.paths import SCHEMAS_DIR
from fedgen.validate.manifest_stream import Document, chunk_loader, split_documents
from fedgen.validate.sandbox import run_sandboxed

# The Kubernetes version GKE's Regular channel (the default channel for new clusters) runs in late 2026:
# 1.35.8-gke.1036000 became the Regular channel's default version for cluster creation on 2026-09-17 (GKE Regular
# channel release notes). The one place the default lives; `--kubernetes-version` overrides it.
DEFAULT_KUBERNETES_VERSION = "1.35"

TIMEOUT_SECONDS = 300

STATUS_VALID = "valid"
STATUS_INVALID = "invalid"
STATUS_ERROR = "error"
STATUS_SKIPPED = "skipped"
STATUS_NO_SCHEMA = "no-schema"

DEFAULT_SCHEMAS_DIR = SCHEMAS_DIR

_STATUS_MAP = {
    "statusValid": STATUS_VALID,
    "statusInvalid": STATUS_INVALID,
    "statusError": STATUS_ERROR,
    "statusSkipped": STATUS_SKIPPED,
}
_NO_SCHEMA = re.compile(r"^could not find schema for ")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?$")
# One error in kubeconform's msg: "- at '<JSON pointer>': <message>", up to the next one.
_MSG_ITEM = re.compile(r"- at '([^']*)': (.*?)(?=\s+- at '|$)")
_GROUP_HEADER = "validation failed"
# kubeconform runs sandboxed (sandbox.py: no environment of the runner, no network) with its report capped.
MAX_REPORT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SchemaResult:
    kind: str
    api_version: str
    name: str
    namespace: str | None
    status: str  # "valid" | "invalid" | "error" | "skipped" | "no-schema"
    messages: tuple[str, ...]  # one per error, "<JSON pointer>: <message>" when kubeconform gives a path
    document_index: int  # position of the object's document in the input stream (0-based)


# ------------------------------------------------------------------------------------------------ locating


def find_kubeconform() -> Path:
    """The kubeconform binary: $FEDGEN_KUBECONFORM, then <repo>/.tools/bin/kubeconform, then PATH."""
    return find_tool("kubeconform")


def _schemas_dir(schemas_dir: Path | None) -> Path:
    base = Path(schemas_dir) if schemas_dir is not None else DEFAULT_SCHEMAS_DIR
    if not (base / "kubernetes").is_dir():
        raise ExternalError(f"offline schemas not found: {base / 'kubernetes'} is missing (regenerate with tools/build_schemas.py)")
    return base.resolve()


def available_kubernetes_versions(schemas_dir: Path | None = None) -> tuple[str, ...]:
    """The Kubernetes minor versions ("1.35", ...) that have built-in schemas, oldest first."""
    base = _schemas_dir(schemas_dir) / "kubernetes"
    found = []
    for entry in base.iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)", entry.name)
        if entry.is_dir() and match:
            found.append((int(match[1]), int(match[2])))
    return tuple(f"{major}.{minor}" for major, minor in sorted(found))


def _resolve_version(kubernetes_version: str, schemas_dir: Path) -> str:
    available = available_kubernetes_versions(schemas_dir)
    match = _VERSION.match(str(kubernetes_version).strip())
    version = f"{int(match[1])}.{int(match[2])}" if match else None
    if version not in available:
        raise InputError(f"unknown Kubernetes version {kubernetes_version!r}: schemas are available for {', '.join(available)}")
    return version


# ---------------------------------------------------------------------------------------------- validating


def _items(doc: Document) -> list[dict[str, Any]]:
    """The objects kubeconform sees in a document: itself, or the items of a kind: List."""
    data = doc.data
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("kind"), str) and data["kind"].lower() == "list" and isinstance(data.get("items"), list):
        return [item for item in data["items"] if isinstance(item, dict)]
    return [data]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    raw_meta = obj.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = _text(meta.get("name"))
    generate_name = meta.get("generateName")
    if isinstance(generate_name, str):
        name = generate_name + "{{ generateName }}"  # kubeconform's spelling
    return _text(obj.get("kind")), _text(obj.get("apiVersion")), name


def _namespace(obj: dict[str, Any] | None) -> str | None:
    if obj is None or not isinstance(obj.get("metadata"), dict):
        return None
    namespace = obj["metadata"].get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def _detailed_errors(msg: str) -> list[tuple[str, str]]:
    """(path, message) of every error spelt out in kubeconform's one-line msg, group headers dropped."""
    return [(path, text.strip()) for path, text in _MSG_ITEM.findall(msg) if text.strip() != _GROUP_HEADER]


def _messages(entry: dict[str, Any], status: str, kubernetes_version: str) -> tuple[str, ...]:
    msg = str(entry.get("msg") or "")
    if status == STATUS_INVALID:
        pairs: list[tuple[str, str]] = []
        for error in entry.get("validationErrors") or []:
            if not isinstance(error, dict):
                continue
            path, text = str(error.get("path") or ""), str(error.get("msg") or "")
            if text == _GROUP_HEADER:
                # several errors at one place: kubeconform lists them only in msg
                details = [(p, t) for p, t in _detailed_errors(msg) if p == path or p.startswith(path + "/")]
                if details:
                    pairs.extend(details)
                    continue
            pairs.append((path, text))
        lines = sorted({f"{path or '/'}: {text}" for path, text in pairs})
        return tuple(lines) if lines else ((msg,) if msg else ())
    if status == STATUS_NO_SCHEMA:
        return (
            f"could not find schema for {entry.get('version') or '?'} {entry.get('kind') or '?'}: none for"
            f" Kubernetes {kubernetes_version} nor among the custom resource schemas",
        )
    return (msg,) if msg else ()


def _run(binary: Path, schemas: Path, version: str, folder: Path) -> dict[str, Any]:
    if "{{" in str(schemas) or "}}" in str(schemas):
        raise InputError(f"schemas directory {schemas} contains '{{{{' or '}}}}', which kubeconform cannot use")
    command = [
        str(binary),
        "-strict",
        "-output",
        "json",
        "-summary",
        "-verbose",
        "-schema-location",
        f"{schemas}/crds/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
        "-schema-location",
        f"{schemas}/kubernetes/v{version}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
        str(folder),  # kubeconform reads every .yaml file in it
    ]
    ran = run_sandboxed(command, cwd=folder, timeout=TIMEOUT_SECONDS, max_stdout=MAX_REPORT_BYTES)
    if ran.timed_out:
        raise ExternalError(f"kubeconform did not finish within {TIMEOUT_SECONDS}s")
    if ran.too_large:
        raise ExternalError(f"kubeconform printed more than {MAX_REPORT_BYTES // (1024 * 1024)} MiB")
    try:
        report = json.loads(ran.stdout)
        if not isinstance(report, dict) or not isinstance(report.get("resources"), list):
            raise ValueError("no 'resources' list")
    except ValueError as exc:
        detail = (ran.stderr or ran.stdout.decode("utf-8", "replace")).strip().splitlines()
        raise ExternalError(f"kubeconform (exit {ran.returncode}) gave no JSON report: {detail[0] if detail else exc}") from exc
    return report


def validate_manifests(
    manifests: bytes,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    schemas_dir: Path | None = None,
) -> list[SchemaResult]:
    """Validate a YAML stream of Kubernetes objects; one result per object, ordered by document_index."""
    schemas = _schemas_dir(schemas_dir)
    version = _resolve_version(kubernetes_version, schemas)
    binary = find_kubeconform()
    return _validate(binary, schemas, version, [d for d in split_documents(manifests) if d.text.strip()])


def validate_documents(
    documents: Sequence[str],
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    schemas_dir: Path | None = None,
) -> list[SchemaResult]:
    """Validate documents already split, one object each, as JSON (or YAML) text: the stream
    ``"---\n".join(documents)`` would give the same results, without splitting and parsing it again.
    document_index is the position in ``documents``."""
    schemas = _schemas_dir(schemas_dir)
    version = _resolve_version(kubernetes_version, schemas)
    binary = find_kubeconform()
    parsed = []
    load = None
    for index, text in enumerate(documents):
        if not text.strip():
            continue
        try:
            data, is_json = json.loads(text), True
        except ValueError:
            is_json = False
            load = load or chunk_loader()
            try:
                data = load(text)
            except Exception:  # noqa: BLE001 - kubeconform reports what it cannot read
                data = None
        parsed.append(Document(index=index, text=text, data=data, json=is_json))
    return _validate(binary, schemas, version, parsed)


Batch = tuple[dict[str, "Document"], dict[tuple[str, str, str, str], "Document"]]


def _groupable(doc: Document) -> tuple[str, str, str] | None:
    """The identity kubeconform reports a JSON document by, when it names one object unambiguously."""
    if not doc.json or _items(doc) != [doc.data]:
        return None
    metadata = doc.data.get("metadata")
    if not isinstance(metadata, dict) or "generateName" in metadata:
        return None
    identity = _identity(doc.data)
    return identity if all(identity) else None


def _write_batch(folder: Path, documents: list[Document], *, grouped: bool) -> Batch:
    """The documents as files for kubeconform: each in its own file, or (grouped) the JSON documents that
    name one object each in a few multi-document files, no identity twice in a file, so that each verdict
    maps back by (file, kind, apiVersion, name). Writing hundreds of small files costs more than kubeconform
    (file creation is slow on some file systems, and each write waits for the interpreter lock while the
    rules run)."""
    width = len(str(documents[-1].index))
    by_file: dict[str, Document] = {}
    by_identity: dict[tuple[str, str, str, str], Document] = {}
    groups: list[list[str]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for doc in documents:
        identity = _groupable(doc) if grouped else None
        if identity is None:
            name = f"doc-{doc.index:0{width}d}.yaml"
            (folder / name).write_text(doc.text, encoding="utf-8")
            by_file[name] = doc
            continue
        group = seen[identity] = seen.get(identity, -1) + 1
        if group == len(groups):
            groups.append([])
        groups[group].append(doc.text)
        by_identity[(f"group-{group}.yaml", *identity)] = doc
    for group, texts in enumerate(groups):
        (folder / f"group-{group}.yaml").write_text("\n---\n".join(texts) + "\n", encoding="utf-8")
    return by_file, by_identity


def _validate(binary: Path, schemas: Path, version: str, documents: list[Document], *, grouped: bool = True) -> list[SchemaResult]:
    if not documents:
        return []
    with tempfile.TemporaryDirectory(prefix="fedgen-kubeconform-") as tmp:
        by_file, by_identity = _write_batch(Path(tmp), documents, grouped=grouped)
        report = _run(binary, schemas, version, Path(tmp))

    results: list[tuple[tuple[Any, ...], SchemaResult]] = []
    reported: set[int] = set()
    for entry in report["resources"]:
        if not isinstance(entry, dict):
            continue
        raw_status = entry.get("status") or ""
        if raw_status not in _STATUS_MAP:  # "" is an empty document
            continue
        filename = Path(str(entry.get("filename") or "")).name
        found = by_file.get(filename)
        if found is None and filename.startswith("group-"):
            found = by_identity.get((filename, str(entry.get("kind") or ""), str(entry.get("version") or ""), str(entry.get("name") or "")))
            if found is None or found.index in reported:  # not one verdict per document: the plain way
                return _validate(binary, schemas, version, documents, grouped=False)
            reported.add(found.index)
        if found is None:
            raise ExternalError(f"kubeconform reported on an unknown file {filename!r}")
        doc = found
        status = _STATUS_MAP[raw_status]
        if status == STATUS_ERROR and _NO_SCHEMA.match(str(entry.get("msg") or "")):
            status = STATUS_NO_SCHEMA
        kind = str(entry.get("kind") or "")
        api_version = str(entry.get("version") or "")
        name = str(entry.get("name") or "")
        items = _items(doc)
        position, obj = 0, None
        for i, item in enumerate(items):
            if _identity(item) == (kind, api_version, name):
                position, obj = i, item
                break
        if obj is None and len(items) == 1 and not kind:
            obj = items[0]
            kind, api_version, name = _identity(obj)
        result = SchemaResult(
            kind=kind,
            api_version=api_version,
            name=name,
            namespace=_namespace(obj),
            status=status,
            messages=_messages(entry, status, version),
            document_index=doc.index,
        )
        key = (doc.index, position, api_version, kind, result.namespace or "", name, status, result.messages)
        results.append((key, result))
    if len(reported) != len(by_identity):  # a grouped document without its verdict: the plain way
        return _validate(binary, schemas, version, documents, grouped=False)
    results.sort(key=lambda pair: pair[0])
    return [result for _, result in results]
