"""Build the model: read the repo, build each sync root as its applier does, map objects to their source,
run kubeconform once over everything built. The only module of validate that touches the world.

Order, for speed (validate is a PR check; see ModelBuild): kubectl kustomize starts as soon as the ledgers
and each spec's GitOps engine are known, before anything heavy is imported or parsed; kubeconform starts on
what the builds print as soon as they are done; meanwhile the repo is read and the specs load, and the engine
applies every rule that does not need kubeconform's verdicts before waiting for them (PendingModel).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError, FedgenError
from fedgen.tools import find_tool
from fedgen.untrusted import MAX_DEPTH, TooDeep, loads_json
from fedgen.validate.keyscan import scan_bytes, scan_path
from fedgen.validate.kustomization import Guard, RootCheck
from fedgen.validate.model import (
    BOOTSTRAP,
    SYNC,
    EnrollmentZip,
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
from fedgen.validate.sandbox import run_sandboxed
from fedgen.validate.scan import MAX_BYTES, as_text, list_files, read_small
from fedgen.validate.yamlsource import YamlDoc, load_all_plain, parse_file

if TYPE_CHECKING:
    from fedgen.provision.static import StaticKits

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
OWNED_DIR = ".fedgen/owned"
INTERRUPT_MARKERS = (".fedgen/journal.json", ".fedgen/journal.json.tmp", ".fedgen/tmp")
KUSTOMIZE_TIMEOUT = 120
MAX_BUILD_BYTES = 256 * 1024 * 1024
MAX_LEDGER_BYTES = 64 * 1024 * 1024  # a ledger of 5000 sites' files is a few MiB
SYNC_KINDS = {("configsync.gke.io", "RootSync"), ("configsync.gke.io", "RepoSync"), ("argoproj.io", "Application")}


def kustomization_in(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


# ----------------------------------------------------------------------------------------------- files


def read_file(repo: Path, rel: str) -> RepoFile:
    """One file: its keys (every file, any size), its text, and its documents when it is YAML/JSON."""
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
    parsed = parse_file(rel, text)
    problem = found.uninspectable or (str(TooDeep(MAX_DEPTH)) if parsed.too_deep else None)
    return RepoFile(rel, text, parsed.docs, parsed.error, parsed.error_line, found.keys, problem)


def read_files(repo: Path, paths: Iterable[str] | None = None) -> dict[str, RepoFile]:
    return {rel: read_file(repo, rel) for rel in (list_files(repo) if paths is None else paths)}


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


ParsedLedger = tuple[str, dict[str, Any] | None, str | None]  # (path, document, error)


def parse_ledgers(repo: Path) -> list[ParsedLedger]:
    """Every .fedgen/owned/*.json as (path, document or None, error or None); cheap (no digests)."""
    folder = repo / OWNED_DIR
    if (repo / ".fedgen").is_symlink() or folder.is_symlink():
        return [(OWNED_DIR, None, "a symbolic link; no ledger is read through it")]
    if not folder.is_dir():
        return []
    parsed: list[ParsedLedger] = []
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(repo).as_posix()
        try:
            if path.is_symlink() or not path.is_file():
                raise ValueError("a symbolic link or not a regular file; not read")
            with path.open("rb") as fh:
                raw = fh.read(MAX_LEDGER_BYTES + 1)
            if len(raw) > MAX_LEDGER_BYTES:
                raise ValueError(f"larger than {MAX_LEDGER_BYTES // (1024 * 1024)} MiB")
            doc = loads_json(raw)
            files = doc["files"]
            if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
                raise TypeError("files is not a mapping of path to digest")
            if not isinstance(doc.get("shared", []), list):
                raise TypeError("shared is not a list of paths")
            parsed.append((rel, doc, None))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parsed.append((rel, None, f"{type(exc).__name__}: {exc}"))
    return parsed


def _ledger(rel: str, doc: Mapping[str, Any], **extra: Any) -> Ledger:
    spec, federation = doc.get("spec"), doc.get("federation")
    return Ledger(
        rel,
        str(federation) if federation else Path(rel).stem,
        str(spec) if spec else None,
        {str(k): str(v) for k, v in doc["files"].items()},
        extra.pop("actual", {}),
        shared=tuple(sorted(str(p) for p in doc.get("shared", []))),
        contributions=tuple(_contributions(doc)),
        **extra,
    )


def preliminary_ledgers(parsed: list[ParsedLedger]) -> tuple[Ledger, ...]:
    """Ledgers without the repo's digests: enough to know each federation's spec and owned paths."""
    return tuple(Ledger(rel, None, None, {}, {}, error=error) if doc is None else _ledger(rel, doc) for rel, doc, error in parsed)


def finish_ledgers(repo: Path, parsed: list[ParsedLedger], listed: frozenset[str]) -> tuple[Ledger, ...]:
    """Ledgers with the digest of every recorded file now and the expected digests of shared files. Only
    files validate lists are read (a ledger may name anything: ../../etc/passwd is simply missing)."""
    shared_digests = expected_shared([doc for _, doc, _ in parsed if doc is not None])
    out = []
    for rel, doc, error in parsed:
        if doc is None:
            out.append(Ledger(rel, None, None, {}, {}, error=error))
            continue
        files = {str(k) for k in doc["files"]}
        shared = tuple(sorted(str(p) for p in doc.get("shared", [])))
        actual = {p: _digest(repo / p) if p in listed else None for p in sorted({*files, *shared})}
        out.append(_ledger(rel, doc, actual=actual, shared_expected={p: shared_digests[p] for p in shared if p in shared_digests}))
    return tuple(out)


def read_ledgers(repo: Path) -> tuple[Ledger, ...]:
    return finish_ledgers(repo, parse_ledgers(repo), frozenset(list_files(repo)))


def _key_bytes(path: Path | None) -> tuple[int | None, str | None]:
    if path is None:
        return None, None
    from fedgen.seal import load_certificate

    try:
        cert = load_certificate(path.read_bytes(), origin=str(path))
    except (OSError, FedgenError) as exc:
        return None, str(exc).splitlines()[0]
    return (cert.key_size + 7) // 8, None


def _read_spec_head(repo: Path, spec: str) -> Any:
    """The spec's first document as plain data (libyaml, at most the spec loader's size), or None."""
    from fedgen.spec.yamlsafe import MAX_BYTES as SPEC_MAX_BYTES

    try:
        with (repo / spec).open("rb") as fh:
            docs = load_all_plain(fh.read(SPEC_MAX_BYTES).decode("utf-8"))
        return docs[0] if docs else None
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the spec
        return None


def _outside(repo: Path, spec: str, guard: Guard) -> str | None:
    """Why validate may not read the spec or a sealing certificate it names (a hostile repo's spec may
    point anywhere), or None. The spec loader reads certificates only for specs its schema accepts, and for
    those libyaml reads the same paths."""
    problem = guard.file_problem(spec)
    if problem is not None:
        return f"spec {problem}"
    from fedgen.spec.semantic import certificate_paths

    try:
        certificates = certificate_paths(_read_spec_head(repo, spec)["spec"])
    except Exception:  # noqa: BLE001 - not a schema-valid spec: the loader stops before any certificate
        return None
    folder = posixpath.dirname(spec) or "."
    for _, cert in certificates:
        problem = guard.file_problem(cert, folder)
        if problem is not None:
            return f"sealing certificate {problem}"
    return None


def read_spec(repo: Path, spec: str, guard: Guard) -> SpecInfo:
    """Load a ledger's spec like render does (no state needed) and read its sealing certificates; nothing
    outside the repository (or behind a symbolic link) is read."""
    from fedgen.spec import load_federation

    path = repo / spec
    if not path.is_file():
        return SpecInfo(path=spec, exists=False)
    outside = _outside(repo, spec, guard)
    if outside is not None:
        return SpecInfo(path=spec, exists=True, error=f"{outside}: not read")
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
        federation=fed,
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


def _build_text(repo: Path, folder: str, load_restrictor: bool) -> tuple[bytes, str | None]:
    """Run kubectl kustomize like the applier, sandboxed: (stdout, None) or (b"", first error line)."""
    kubectl = find_tool("kubectl")
    command = [str(kubectl), "kustomize"]
    if load_restrictor:
        command.append("--load-restrictor=LoadRestrictionsNone")
    command.append(folder)
    ran = run_sandboxed(command, cwd=repo, timeout=KUSTOMIZE_TIMEOUT, max_stdout=MAX_BUILD_BYTES)
    if ran.timed_out:
        return b"", f"kubectl kustomize did not finish within {KUSTOMIZE_TIMEOUT}s"
    if ran.too_large:
        return b"", f"kubectl kustomize printed more than {MAX_BUILD_BYTES // (1024 * 1024)} MiB"
    if ran.returncode != 0:
        lines = [ln.strip() for ln in ran.stderr.splitlines() if ln.strip()]
        detail = lines[0] if lines else f"exit {ran.returncode}"
        return b"", detail.removeprefix("error: ").replace(str(repo) + "/", "")
    return ran.stdout, None


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


def _build(repo: Path, folder: str, load_restrictor: bool) -> Build:
    return _parse_build(repo, *_build_text(repo, folder, load_restrictor))


def build_folder(repo: Path, folder: str, *, load_restrictor: bool) -> Build:
    """(objects, None) or ([], first error line) of `kubectl kustomize` on one folder, as the engines build
    it (fedgen status and bootstrap read the same objects validate checks)."""
    return _build(repo, folder, load_restrictor)


class Builder:
    """Checks each folder's kustomizations (kustomization.py) and runs kubectl kustomize for those that pass,
    many at once, parsing what each prints (threads wait on the subprocesses, so reading the repo in the
    meantime overlaps with the builds). A folder with a refusal is never built."""

    def __init__(self, repo: Path, pool: ThreadPoolExecutor, listed: Iterable[str]) -> None:
        self.repo = repo
        self.pool = pool
        self.guard = Guard(repo, frozenset(listed))
        self.checks: dict[str, RootCheck] = {}
        self.futures: dict[str, Future[Build]] = {}

    def start(self, folder: str, *, load_restrictor: bool) -> None:
        if folder in self.checks or kustomization_in(self.repo / folder) is None:
            return
        find_tool("kubectl")  # missing tool: exit 3 before any thread starts
        self.checks[folder] = check = self.guard.check(folder)
        if check.buildable:
            self.futures[folder] = self.pool.submit(_build, self.repo, folder, load_restrictor)

    def results(self) -> dict[str, Build]:
        return {folder: future.result() for folder, future in sorted(self.futures.items())}


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
        builder = Builder(repo, pool, files)
        for folder, _ in plan:
            kfile = kustomization_in(repo / folder)
            if kfile is not None:
                builder.start(folder, load_restrictor=_engine(kfile.relative_to(repo).as_posix(), specs, ledgers) != "argocd")
        builds = builder.results()
    return assemble_roots(repo, plan, files, builds, builder.checks), tuple(folders)


def assemble_roots(repo: Path, plan: list[tuple[str, str]], files: Mapping[str, RepoFile], builds: Mapping[str, Build], checks: Mapping[str, RootCheck]) -> tuple[SyncRoot, ...]:
    index = SourceIndex(doc for f in files.values() for doc in f.docs)
    return tuple(_root(repo, folder, role, files, index, builds.get(folder), checks.get(folder)) for folder, role in plan)


def _engine(kustomization: str, specs: Mapping[str, SpecInfo], ledgers: tuple[Ledger, ...]) -> str:
    for ledger in ledgers:
        spec = specs.get(ledger.spec) if ledger.spec else None
        if kustomization in ledger.owned and spec is not None and spec.engine:
            return str(spec.engine)
    return "config-sync"


def _root(repo: Path, folder: str, role: str, files: Mapping[str, RepoFile], index: SourceIndex, build: Build | None, check: RootCheck | None) -> SyncRoot:
    kfile = kustomization_in(repo / folder)
    if kfile is None or check is None:
        if role == BOOTSTRAP:  # plain files, applied by hand
            objects: list[KObject] = []
            for path in sorted(p for p in files if posixpath.dirname(p) == folder):
                for doc in files[path].docs:
                    if is_object(doc.data):
                        objects.append(KObject(doc.data, folder, len(objects), doc, path))
            return SyncRoot(folder, role, None, tuple(objects))
        return SyncRoot(folder, role, None)
    kustomization = kfile.relative_to(repo).as_posix()
    if build is None:  # refused: not built
        return SyncRoot(folder, role, kustomization, (), None, check.reachable, check.refusals)
    built, error = build
    objects_t = tuple(KObject(data, folder, i, index.find(data, check.reachable), kustomization) for i, data in enumerate(built))
    return SyncRoot(folder, role, kustomization, objects_t, error, check.reachable)


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
Verdict = tuple[str, tuple[str, ...]]  # (status, messages)
VerdictKey = tuple[str, str, str]  # (tool|schemas|version, version, sha256 of the object's JSON)
_VERDICTS: dict[VerdictKey, Verdict] = {}
_VERDICT_CACHE_SIZE = 4096

Verdicts = Callable[[], tuple[SchemaVerdict, ...]]


class SchemaCheck:
    """kubeconform's verdicts on built objects, one JSON document each (so document indexes line up),
    computed in the background: check_after() starts kubeconform as soon as some builds are done, verdicts()
    waits for those runs and checks whatever they did not cover (objects of roots found later)."""

    def __init__(self, kubernetes_version: str) -> None:
        from fedgen.validate.kubeconform import DEFAULT_SCHEMAS_DIR, find_kubeconform

        binary = find_kubeconform()  # missing tool: exit 3 on every run, cached verdicts or not
        self.version = kubernetes_version
        self.context = f"{binary}|{DEFAULT_SCHEMAS_DIR}|{kubernetes_version}"
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fedgen-kubeconform")
        self.runs: list[Future[dict[VerdictKey, Verdict]]] = []

    def _texts(self, datas: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[VerdictKey]]:
        texts = [json.dumps(d, default=_json_default, sort_keys=True) for d in datas]
        return texts, [(self.context, self.version, hashlib.sha256(t.encode()).hexdigest()) for t in texts]

    def _run(self, datas: Iterable[Mapping[str, Any]]) -> dict[VerdictKey, Verdict]:
        from fedgen.validate.kubeconform import validate_documents

        texts, keys = self._texts(datas)
        todo = sorted({k: i for i, k in enumerate(keys) if k not in _VERDICTS}.values())
        if not todo:
            return {}
        found: dict[int, list[Any]] = defaultdict(list)
        for result in validate_documents([texts[i] for i in todo], kubernetes_version=self.version):
            if 0 <= result.document_index < len(todo):
                found[result.document_index].append(result)
        out: dict[VerdictKey, Verdict] = {}
        for position, i in enumerate(todo):
            results = found.get(position) or []
            status = next((r.status for r in results if r.status != "valid"), "valid" if results else "error")
            messages = tuple(m for r in results for m in r.messages) or (() if results else ("kubeconform gave no result",))
            out[keys[i]] = (status, messages)
        return out

    def check_after(self, builds: Iterable[Future[Build]]) -> None:
        """Validate what these builds print, in the background, once they are all done."""
        waiting = list(builds)
        if waiting:
            self.runs.append(self.pool.submit(lambda: self._run(d for f in waiting for d in f.result()[0])))

    def verdicts(self, objects: list[KObject]) -> Verdicts:
        later = self.pool.submit(self._later, objects) if objects else None
        self.pool.shutdown(wait=False)

        def wait() -> tuple[SchemaVerdict, ...]:
            if later is None:
                return ()
            keys, found = later.result()
            if len(_VERDICTS) > _VERDICT_CACHE_SIZE:
                _VERDICTS.clear()
            _VERDICTS.update(found)
            return tuple(SchemaVerdict(o, *found[k]) for o, k in zip(objects, keys))

        return wait

    def _later(self, objects: list[KObject]) -> tuple[list[VerdictKey], dict[VerdictKey, Verdict]]:
        """Each object's key and the verdict for every key: from the runs started early, the cache, or a
        run of kubeconform over what neither has."""
        found: dict[VerdictKey, Verdict] = {}
        for run in self.runs:
            found.update(run.result())
        _, keys = self._texts(o.data for o in objects)
        for k in keys:
            if k not in found and k in _VERDICTS:
                found[k] = _VERDICTS[k]
        missing = [o.data for o, k in zip(objects, keys) if k not in found]
        if missing:
            found.update(self._run(missing))
        return keys, found

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def start_schema_check(objects: list[KObject], kubernetes_version: str) -> Verdicts:
    """Start kubeconform over these objects in the background; the function returned waits for the verdicts."""
    return SchemaCheck(kubernetes_version).verdicts(objects)


def check_schemas(objects: list[KObject], kubernetes_version: str) -> tuple[SchemaVerdict, ...]:
    """kubeconform over every built object, one verdict each."""
    return start_schema_check(objects, kubernetes_version)()


# ------------------------------------------------------------------------------------------- enrollment

ENROLLMENT_PREFIX = "enrollment/"


def _read_capped(path: Path, cap: int) -> bytes | None:
    """At most cap + 1 bytes of the file (so 'larger than cap' is known without reading it all)."""
    try:
        with path.open("rb") as fh:
            return fh.read(cap + 1)
    except OSError:
        return None


def _reason(exc: Exception, what: str) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix(f"{what}: ")


def read_enrollment_zip(repo: Path, rel: str) -> EnrollmentZip:
    """One file under enrollment/: a bounded binary read (64 KiB) and fedgen.enroll's pure inspection."""
    from fedgen.enroll import PrivateKeyFound, classify, inspect_request_zip, inspect_signed_zip
    from fedgen.enroll.inspect import MAX_ZIP_BYTES
    from fedgen.errors import InputError

    where = classify(rel)
    data = _read_capped(repo / rel, MAX_ZIP_BYTES)

    def made(**found: Any) -> EnrollmentZip:
        if where is None:
            return EnrollmentZip(rel, None, None, None, **found)
        return EnrollmentZip(rel, where.federation, where.kind, where.site, **found)

    # A file out of place is only looked into for keys: what else is wrong with it does not matter.
    if data is None:
        return made(error="the file cannot be read" if where is not None else None)
    if len(data) > MAX_ZIP_BYTES:
        return made(error=f"more than the {MAX_ZIP_BYTES} bytes an enrollment zip may have" if where is not None else None)
    try:
        if where is not None and where.kind == "signed":
            return made(signed=inspect_signed_zip(data, what=rel))
        info = inspect_request_zip(data, what=rel)
        return made(request=info) if where is not None else made()
    except PrivateKeyFound as exc:
        return made(private_key=_reason(exc, rel))
    except InputError as exc:
        return made(error=_reason(exc, rel) if where is not None else None)
    except Exception as exc:  # noqa: BLE001 - hostile bytes the checks did not foresee: a finding, never a traceback
        return made(error=f"cannot be inspected ({type(exc).__name__}: {_reason(exc, rel)})" if where is not None else None)


def read_enrollment(repo: Path, paths: Iterable[str], specs: Mapping[str, SpecInfo], ledgers: tuple[Ledger, ...]) -> tuple[tuple[EnrollmentZip, ...], dict[str, SpecInfo]]:
    """Every file under enrollment/ (sorted), and the specs completed with the root CA each server trusts
    (read only for federations that have enrollment files). Nothing of fedgen.enroll is imported otherwise."""
    rels = sorted(p for p in paths if p.startswith(ENROLLMENT_PREFIX))
    out_specs = dict(specs)
    if not rels:
        return (), out_specs
    zips = tuple(read_enrollment_zip(repo, rel) for rel in rels)
    from fedgen.enroll import server_root_pem

    federations = {z.federation for z in zips if z.federation}
    for ledger in ledgers:
        if ledger.error or ledger.spec is None or ledger.federation not in federations:
            continue
        info = out_specs.get(ledger.spec)
        if info is None or info.federation is None or info.server_root_pem is not None:
            continue
        try:
            root = server_root_pem(repo, info.federation)
        except FedgenError:  # the ConfigMap is broken: the consistency rules report it
            root = None
        out_specs[ledger.spec] = replace(info, server_root_pem=root)
    return zips, out_specs


# ------------------------------------------------------------------------------------------------- model


def _spec_hint(repo: Path, spec: str) -> str:
    """What identifies a spec's NVFlare input before it is loaded: its bytes (see StaticKits)."""
    try:
        path = (repo / spec).resolve()
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_relative_to(repo) else f"outside {spec}"
    except OSError:
        return f"unreadable {spec}"


def _static_kits(kits: StaticKits, repo: Path, specs: Mapping[str, SpecInfo]) -> dict[str, Any]:
    """spec path -> NVFlare's static kit files for its federation, or one line saying why there are none."""
    from fedgen.provision.core import static_request

    out: dict[str, Any] = {}
    asked: list[tuple[str, str, dict[str, Any]]] = []
    for path, info in sorted(specs.items()):
        if info.federation is not None:
            try:
                asked.append((path, _spec_hint(repo, path), static_request(info.federation)))
            except FedgenError as exc:
                out[path] = str(exc)
    try:
        out.update(zip([a[0] for a in asked], kits.get([(hint, request) for _, hint, request in asked])))
    except ExternalError as exc:
        out.update((a[0], str(exc)) for a in asked)
    return out


def _quick_engine(repo: Path, spec: str, guard: Guard) -> str | None:
    """spec.gitops.engine read without the full spec load, to start the builds early."""
    if guard.file_problem(spec) is not None:
        return None
    try:
        return str(_read_spec_head(repo, spec)["spec"]["gitops"]["engine"])
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the spec
        return None


@dataclass(frozen=True)
class PendingModel:
    """The model without kubeconform's verdicts, which are still being computed; complete() waits for them."""

    model: Model
    verdicts: Verdicts

    def complete(self) -> Model:
        return replace(self.model, schema=self.verdicts())


class ModelBuild:
    """Building the model of a repo, started at once: kubectl kustomize of every clusters/<c>/ folder (and
    its bootstrap), then kubeconform on what they print, run in the background while finish() reads the
    repo, loads the specs and maps objects to their source. A missing tool is raised by finish(), so the
    caller's own input checks (the allowlist) still come first. Use as a context manager."""

    def __init__(self, repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> None:
        self.repo = repo
        self.kubernetes_version = kubernetes_version
        self.now = now
        self.paths = list_files(repo)  # what kustomize may read, and what is read below
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fedgen-kustomize")
        self.builder = Builder(repo, self.pool, self.paths)
        self.parsed = parse_ledgers(repo)
        early_ledgers = preliminary_ledgers(self.parsed)
        engines = {ledger.spec: _quick_engine(repo, ledger.spec, self.builder.guard) for ledger in early_ledgers if ledger.spec}
        quick = {spec: SpecInfo(path=spec, exists=True, engine=engine) for spec, engine in engines.items()}
        self.cluster_dirs = cluster_folders(repo)
        self.static: StaticKits | None = None
        if engines:  # NVFlare's import takes longest: its worker starts first (see validate/rerender.py)
            from fedgen.provision.static import StaticKits

            self.static = StaticKits(_spec_hint(repo, spec) for spec in engines)
        self.schema: SchemaCheck | None = None
        self.error: FedgenError | None = None
        try:
            self._start(plan_roots(repo, self.cluster_dirs, self.cluster_dirs), quick, early_ledgers)
            self.schema = SchemaCheck(kubernetes_version)
            self.schema.check_after(self.builder.futures.values())
        except ExternalError as exc:
            self.error = exc

    def _start(self, plan: list[tuple[str, str]], specs: Mapping[str, SpecInfo], ledgers: tuple[Ledger, ...]) -> None:
        for folder, _ in plan:
            kfile = kustomization_in(self.repo / folder)
            if kfile is not None:
                self.builder.start(folder, load_restrictor=_engine(kfile.relative_to(self.repo).as_posix(), specs, ledgers) != "argocd")

    def finish(self) -> PendingModel:
        """Read everything, wait for the builds, start kubeconform on what is left; kubeconform's verdicts
        are the PendingModel's to wait for."""
        if self.error is not None:
            raise self.error
        assert self.schema is not None
        repo = self.repo
        paths = self.paths
        files = read_files(repo, paths)
        ledgers = finish_ledgers(repo, self.parsed, self.builder.guard.listed)
        specs = {ledger.spec: read_spec(repo, ledger.spec, self.builder.guard) for ledger in ledgers if ledger.spec}
        folders = sorted(set(self.cluster_dirs) | {d for d in _sync_dirs(files) if (repo / d).is_dir()})
        plan = plan_roots(repo, folders, self.cluster_dirs)
        self._start(plan, specs, ledgers)
        enrollment, specs = read_enrollment(repo, paths, specs, ledgers)
        builds = self.builder.results()
        roots = assemble_roots(repo, plan, files, builds, self.builder.checks)
        objects = [o for r in roots for o in r.objects]
        verdicts = self.schema.verdicts(objects)
        from fedgen.validate.rerender import rerender

        rendered = rerender(files, ledgers, specs, _static_kits(self.static, repo, specs) if self.static else {})
        interrupted = tuple(m for m in INTERRUPT_MARKERS if (repo / m).exists())
        model = Model(
            files=files,
            roots=roots,
            ledgers=ledgers,
            specs=specs,
            interrupted=interrupted,
            kubernetes_version=self.kubernetes_version,
            sync_dirs=tuple(folders),
            now=self.now or dt.datetime.now(dt.timezone.utc),
            enrollment=enrollment,
            rerender=rendered,
        )
        return PendingModel(model, verdicts)

    def close(self) -> None:
        if self.static is not None:
            self.static.close()
        self.pool.shutdown(wait=True)
        if self.schema is not None:
            self.schema.close()

    def __enter__(self) -> ModelBuild:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_model(repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> PendingModel:
    """The model of a repo, kubeconform's verdicts still being computed (see ModelBuild)."""
    with ModelBuild(repo, kubernetes_version=kubernetes_version, now=now) as started:
        return started.finish()


def build_model(repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> Model:
    """Read everything, build every sync root, run kubeconform: the complete model."""
    return open_model(repo, kubernetes_version=kubernetes_version, now=now).complete()
