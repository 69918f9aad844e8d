"""Build the model: read the repo, build each sync root as its applier does, map objects to their source,
run kubeconform once over everything built. The only module of validate that touches the world."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import subprocess
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from fedgen.errors import ExternalError, FedgenError
from fedgen.tools import find_tool
from fedgen.validate.model import (
    BOOTSTRAP,
    SYNC,
    KObject,
    Ledger,
    Model,
    RepoFile,
    SchemaVerdict,
    SpecInfo,
    SyncRoot,
    identity,
    is_object,
)
from fedgen.validate.scan import list_files, read_text
from fedgen.validate.yamlsource import YamlDoc, load_all_plain, parse_file

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
OWNED_DIR = ".fedgen/owned"
INTERRUPT_MARKERS = (".fedgen/journal.json", ".fedgen/journal.json.tmp", ".fedgen/tmp")
KUSTOMIZE_TIMEOUT = 120
SYNC_KINDS = {("configsync.gke.io", "RootSync"), ("configsync.gke.io", "RepoSync"), ("argoproj.io", "Application")}


def kustomization_in(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


# ----------------------------------------------------------------------------------------------- files


def read_files(repo: Path) -> dict[str, RepoFile]:
    out: dict[str, RepoFile] = {}
    for rel in list_files(repo):
        text = read_text(repo / rel)
        if text is not None and rel.endswith((".yaml", ".yml", ".json")):
            parsed = parse_file(rel, text)
            out[rel] = RepoFile(rel, text, parsed.docs, parsed.error, parsed.error_line)
        else:
            out[rel] = RepoFile(rel, text)
    return out


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _contributions(doc: Mapping[str, Any]) -> list[Any]:
    items = doc.get("contributions")
    if items is None and isinstance(doc.get("contribution"), dict):
        items = [doc["contribution"]]
    return list(items) if isinstance(items, list) else []


def expected_shared(docs: list[Mapping[str, Any]]) -> dict[str, str]:
    """sha256 of the files federations share (sync root kustomizations, bootstrap, tfvars), recomputed from
    the contributions recorded in the ledgers, exactly as a render would write them; {} when that fails."""
    from fedgen.render.shared import Contribution, shared_files

    try:
        contributions = [Contribution.from_json(c) for doc in docs for c in _contributions(doc)]
        return {path: hashlib.sha256(data).hexdigest() for path, data in shared_files(contributions).items()}
    except Exception:  # noqa: BLE001 - an old or foreign record format: shared files are then checked for presence only
        return {}


def read_ledgers(repo: Path) -> tuple[Ledger, ...]:
    folder = repo / OWNED_DIR
    if not folder.is_dir():
        return ()
    parsed: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(repo).as_posix()
        try:
            doc = json.loads(path.read_text())
            files = doc["files"]
            if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
                raise TypeError("files is not a mapping of path to digest")
            if not isinstance(doc.get("shared", []), list):
                raise TypeError("shared is not a list of paths")
            parsed.append((rel, doc, None))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parsed.append((rel, None, f"{type(exc).__name__}: {exc}"))
    shared_digests = expected_shared([doc for _, doc, _ in parsed if doc is not None])
    out = []
    for rel, doc, error in parsed:
        if doc is None:
            out.append(Ledger(rel, None, None, {}, {}, error=error))
            continue
        files = {str(k): str(v) for k, v in doc["files"].items()}
        shared = tuple(sorted(str(p) for p in doc.get("shared", [])))
        actual = {p: _digest(repo / p) for p in sorted({*files, *shared})}
        spec, federation = doc.get("spec"), doc.get("federation")
        out.append(
            Ledger(
                rel,
                str(federation) if federation else Path(rel).stem,
                str(spec) if spec else None,
                files,
                actual,
                shared=shared,
                shared_expected={p: shared_digests[p] for p in shared if p in shared_digests},
            )
        )
    return tuple(out)


def _key_bytes(path: Path | None) -> tuple[int | None, str | None]:
    if path is None:
        return None, None
    from fedgen.seal import load_certificate

    try:
        cert = load_certificate(path.read_bytes(), origin=str(path))
    except (OSError, FedgenError) as exc:
        return None, str(exc).splitlines()[0]
    return (cert.key_size + 7) // 8, None


def read_spec(repo: Path, spec: str) -> SpecInfo:
    """Load a ledger's spec like render does (no state needed) and read its sealing certificates."""
    from fedgen.spec import load_federation

    path = (repo / spec).resolve()
    if not path.is_file():
        return SpecInfo(path=spec, exists=False)
    try:
        fed = load_federation(path)
    except FedgenError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return SpecInfo(path=spec, exists=True, error=first.replace(str(path), spec))
    key_bytes, sealing_error = _key_bytes(fed.sealing.certificate)
    per_cluster = {}
    for cluster in fed.clusters:
        size, _ = _key_bytes(getattr(cluster, "sealing_certificate", None))
        if size is not None:
            per_cluster[cluster.name] = size
    site_clusters = tuple(sorted({str(s.cluster) for s in fed.sites if getattr(s, "cluster", None)}))
    return SpecInfo(
        path=spec,
        exists=True,
        engine=fed.gitops.engine,
        repo=fed.gitops.repo,
        revision=fed.gitops.revision,
        sealing_scope=fed.sealing.scope,
        sealing_key_bytes=key_bytes,
        sealing_error=sealing_error,
        server_cluster=fed.server.cluster,
        cluster_key_bytes=per_cluster,
        site_clusters=site_clusters,
    )


# ------------------------------------------------------------------------------------------ sync roots


def _local(entry: object) -> bool:
    return isinstance(entry, str) and "://" not in entry and not entry.startswith(("git@", "github.com/", "oci:"))


def reachable_files(repo: Path, folder: str, seen: set[str] | None = None) -> set[str]:
    """Repo files a kustomization folder pulls in through resources/bases/components (recursively)."""
    seen = seen if seen is not None else set()
    if folder in seen:
        return set()
    seen.add(folder)
    kfile = kustomization_in(repo / folder)
    if kfile is None:
        return set()
    out = {kfile.relative_to(repo).as_posix()}
    try:
        doc = YAML(typ="safe", pure=True).load(kfile.read_text())
    except (OSError, YAMLError, ValueError):
        return out
    if not isinstance(doc, dict):
        return out
    for key in ("resources", "bases", "components"):
        entries = doc.get(key) or []
        for entry in entries if isinstance(entries, list) else []:
            if not _local(entry):
                continue
            rel = posixpath.normpath(posixpath.join(folder, str(entry)))
            if rel.startswith(".."):
                continue
            target = repo / rel
            if target.is_dir():
                out |= reachable_files(repo, rel, seen)
            elif target.is_file():
                out.add(rel)
    return out


def _build_text(repo: Path, folder: str, load_restrictor: bool) -> tuple[bytes, str | None]:
    """Run kubectl kustomize like the applier: (stdout, None) or (b"", first error line)."""
    kubectl = find_tool("kubectl")
    command = [str(kubectl), "kustomize"]
    if load_restrictor:
        command.append("--load-restrictor=LoadRestrictionsNone")
    command.append(folder)
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argument list
            command, cwd=repo, capture_output=True, timeout=KUSTOMIZE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return b"", f"kubectl kustomize did not finish within {KUSTOMIZE_TIMEOUT}s"
    except OSError as exc:
        raise ExternalError(f"kubectl could not be started ({kubectl}): {exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = lines[0] if lines else f"exit {proc.returncode}"
        return b"", detail.removeprefix("error: ").replace(str(repo) + "/", "")
    return proc.stdout, None


def _parse_build(repo: Path, text: bytes, error: str | None) -> tuple[list[dict[str, Any]], str | None]:
    if error is not None:
        return [], error
    try:
        docs = load_all_plain(text.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parser's error: kustomize printed something unreadable
        return [], f"build output is not YAML: {' '.join(str(exc).split())[:200]}"
    return [d for d in docs if isinstance(d, dict)], None


class SourceIndex:
    """Find the repo document an object was written in: same identity, or same name when a kustomization
    set the namespace; files the root pulls in first, then the whole repo."""

    def __init__(self, docs: Iterable[YamlDoc]) -> None:
        self.exact: dict[tuple[str, str, str, str], list[YamlDoc]] = defaultdict(list)
        self.named: dict[tuple[str, str, str], list[YamlDoc]] = defaultdict(list)
        for doc in docs:
            if is_object(doc.data):
                group, kind, ns, name = identity(doc.data)
                self.exact[(group, kind, ns, name)].append(doc)
                self.named[(group, kind, name)].append(doc)

    def find(self, data: Mapping[str, Any], prefer: frozenset[str]) -> YamlDoc | None:
        group, kind, ns, name = identity(data)
        for candidates in (self.exact.get((group, kind, ns, name), []), self.named.get((group, kind, name), [])):
            preferred = [d for d in candidates if d.path in prefer]
            for pool in (preferred, candidates):
                if pool:
                    return sorted(pool, key=lambda d: (d.path, d.index))[0]
        return None


def _sync_dirs(files: Mapping[str, RepoFile]) -> set[str]:
    """Folders named by RootSync/RepoSync/Application objects anywhere in the repo."""
    out: set[str] = set()
    for repo_file in files.values():
        for doc in repo_file.docs:
            data = doc.data
            if not is_object(data) or (identity(data)[0], identity(data)[1]) not in SYNC_KINDS:
                continue
            spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
            for source in (spec.get("git"), spec.get("oci"), spec.get("source")):
                if isinstance(source, dict):
                    d = source.get("dir") if "dir" in source else source.get("path")
                    if isinstance(d, str) and d.strip("/ ") not in ("", "."):
                        out.add(posixpath.normpath(d.strip("/")))
    return out


Build = tuple[list[dict[str, Any]], str | None]


class Builder:
    """Runs kubectl kustomize for many folders at once (threads wait on subprocesses, so parsing the repo in
    the meantime overlaps with the builds)."""

    def __init__(self, repo: Path, pool: ThreadPoolExecutor) -> None:
        self.repo = repo
        self.pool = pool
        self.futures: dict[str, Future[tuple[bytes, str | None]]] = {}

    def start(self, folder: str, *, load_restrictor: bool) -> None:
        if folder not in self.futures and kustomization_in(self.repo / folder) is not None:
            find_tool("kubectl")  # missing tool: exit 3 before any thread starts
            self.futures[folder] = self.pool.submit(_build_text, self.repo, folder, load_restrictor)

    def results(self) -> dict[str, Build]:
        return {folder: _parse_build(self.repo, *future.result()) for folder, future in sorted(self.futures.items())}


def cluster_folders(repo: Path) -> list[str]:
    clusters = repo / "clusters"
    return sorted(f"clusters/{p.name}" for p in clusters.iterdir() if p.is_dir()) if clusters.is_dir() else []


def plan_roots(repo: Path, folders: Iterable[str], cluster_dirs: Iterable[str]) -> list[tuple[str, str]]:
    plan: list[tuple[str, str]] = []
    clusters = set(cluster_dirs)
    for folder in sorted(set(folders)):
        plan.append((folder, SYNC))
        boot = f"{folder}/bootstrap"
        if folder in clusters and (repo / boot).is_dir():
            plan.append((boot, BOOTSTRAP))
    return plan


def build_roots(repo: Path, files: Mapping[str, RepoFile], specs: Mapping[str, SpecInfo], ledgers: tuple[Ledger, ...]) -> tuple[tuple[SyncRoot, ...], tuple[str, ...]]:
    """Every sync root (clusters/<c>/ and folders sync objects name) and bootstrap folder, built."""
    cluster_dirs = cluster_folders(repo)
    folders = sorted(set(cluster_dirs) | {d for d in _sync_dirs(files) if (repo / d).is_dir()})
    plan = plan_roots(repo, folders, cluster_dirs)
    with ThreadPoolExecutor(max_workers=4) as pool:
        builder = Builder(repo, pool)
        for folder, _ in plan:
            kfile = kustomization_in(repo / folder)
            if kfile is not None:
                builder.start(folder, load_restrictor=_engine(kfile.relative_to(repo).as_posix(), specs, ledgers) != "argocd")
        builds = builder.results()
    return assemble_roots(repo, plan, files, builds), tuple(folders)


def assemble_roots(repo: Path, plan: list[tuple[str, str]], files: Mapping[str, RepoFile], builds: Mapping[str, Build]) -> tuple[SyncRoot, ...]:
    index = SourceIndex(doc for f in files.values() for doc in f.docs)
    return tuple(_root(repo, folder, role, files, index, builds.get(folder)) for folder, role in plan)


def _engine(kustomization: str, specs: Mapping[str, SpecInfo], ledgers: tuple[Ledger, ...]) -> str:
    for ledger in ledgers:
        spec = specs.get(ledger.spec) if ledger.spec else None
        if kustomization in ledger.owned and spec is not None and spec.engine:
            return str(spec.engine)
    return "config-sync"


def _root(repo: Path, folder: str, role: str, files: Mapping[str, RepoFile], index: SourceIndex, build: tuple[list[dict[str, Any]], str | None] | None) -> SyncRoot:
    kfile = kustomization_in(repo / folder)
    if kfile is None or build is None:
        if role == BOOTSTRAP:  # plain files, applied by hand
            objects: list[KObject] = []
            for path in sorted(p for p in files if posixpath.dirname(p) == folder):
                for doc in files[path].docs:
                    if is_object(doc.data):
                        objects.append(KObject(doc.data, folder, len(objects), doc, path))
            return SyncRoot(folder, role, None, tuple(objects))
        return SyncRoot(folder, role, None)
    kustomization = kfile.relative_to(repo).as_posix()
    reachable = frozenset(reachable_files(repo, folder))
    built, error = build
    objects_t = tuple(KObject(data, folder, i, index.find(data, reachable), kustomization) for i, data in enumerate(built))
    return SyncRoot(folder, role, kustomization, objects_t, error, reachable)


# ----------------------------------------------------------------------------------------------- schemas


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode()
    return str(value)


# kubeconform is deterministic: the same object, Kubernetes version and schemas give the same verdict, so a
# process that validates repeatedly (tests, an editor integration) re-checks only objects that changed.
_VERDICTS: dict[tuple[str, str, str], tuple[str, tuple[str, ...]]] = {}  # (tool|schemas|version, version, sha256)
_VERDICT_CACHE_SIZE = 4096


def check_schemas(objects: list[KObject], kubernetes_version: str) -> tuple[SchemaVerdict, ...]:
    """kubeconform over every built object, one JSON document each (so document indexes line up)."""
    from fedgen.validate.kubeconform import DEFAULT_SCHEMAS_DIR, find_kubeconform, validate_manifests

    binary = find_kubeconform()  # missing tool: exit 3 on every run, cached verdicts or not
    if not objects:
        return ()
    texts = [json.dumps(o.data, default=_json_default, sort_keys=True) for o in objects]
    context = f"{binary}|{DEFAULT_SCHEMAS_DIR}|{kubernetes_version}"
    keys = [(context, kubernetes_version, hashlib.sha256(t.encode()).hexdigest()) for t in texts]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in _VERDICTS}.values())
    if todo:
        stream = "".join("---\n" + texts[i] + "\n" for i in todo)
        found: dict[int, list[Any]] = defaultdict(list)
        for result in validate_manifests(stream.encode(), kubernetes_version=kubernetes_version):
            if 0 <= result.document_index < len(todo):
                found[result.document_index].append(result)
        if len(_VERDICTS) > _VERDICT_CACHE_SIZE:
            _VERDICTS.clear()
        for position, i in enumerate(todo):
            results = found.get(position) or []
            status = next((r.status for r in results if r.status != "valid"), "valid" if results else "error")
            messages = tuple(m for r in results for m in r.messages) or (() if results else ("kubeconform gave no result",))
            _VERDICTS[keys[i]] = (status, messages)
    return tuple(SchemaVerdict(o, *_VERDICTS[k]) for o, k in zip(objects, keys))


# ------------------------------------------------------------------------------------------------- model


def _quick_engine(repo: Path, spec: str) -> str | None:
    """spec.gitops.engine read without the full spec load, to start the builds early."""
    try:
        docs = load_all_plain((repo / spec).read_text(encoding="utf-8"))
        engine = docs[0]["spec"]["gitops"]["engine"]
        return str(engine)
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the spec
        return None


def build_model(repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> Model:
    """Read everything, build every sync root, run kubeconform. kubectl runs while the repo is parsed."""
    ledgers = read_ledgers(repo)
    engines = {ledger.spec: _quick_engine(repo, ledger.spec) for ledger in ledgers if ledger.spec}
    quick = {spec: SpecInfo(path=spec, exists=True, engine=engine) for spec, engine in engines.items()}
    cluster_dirs = cluster_folders(repo)
    early = plan_roots(repo, cluster_dirs, cluster_dirs)
    with ThreadPoolExecutor(max_workers=4) as pool:
        builder = Builder(repo, pool)

        def start(plan: list[tuple[str, str]], specs: Mapping[str, SpecInfo]) -> None:
            for folder, _ in plan:
                kfile = kustomization_in(repo / folder)
                if kfile is not None:
                    builder.start(folder, load_restrictor=_engine(kfile.relative_to(repo).as_posix(), specs, ledgers) != "argocd")

        start(early, quick)
        files = read_files(repo)
        specs = {ledger.spec: read_spec(repo, ledger.spec) for ledger in ledgers if ledger.spec}
        folders = sorted(set(cluster_dirs) | {d for d in _sync_dirs(files) if (repo / d).is_dir()})
        plan = plan_roots(repo, folders, cluster_dirs)
        start(plan, specs)
        builds = builder.results()
    roots = assemble_roots(repo, plan, files, builds)
    objects = [o for r in roots for o in r.objects]
    interrupted = tuple(m for m in INTERRUPT_MARKERS if (repo / m).exists())
    return Model(
        files=files,
        roots=roots,
        ledgers=ledgers,
        specs=specs,
        interrupted=interrupted,
        schema=check_schemas(objects, kubernetes_version),
        kubernetes_version=kubernetes_version,
        sync_dirs=tuple(folders),
        now=now or dt.datetime.now(dt.timezone.utc),
    )
