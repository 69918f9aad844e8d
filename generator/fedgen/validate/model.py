"""The model rules read: repo files, the objects each sync root builds (with their source), the ledgers.

Everything here is plain, frozen data; collecting it (files, kubectl kustomize, kubeconform) is collect/'s job.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fedgen import refarch
from fedgen.validate.yamlsource import YamlDoc

if TYPE_CHECKING:
    from fedgen.enroll import RequestInfo, SignedInfo
    from fedgen.ledger import Ledger
    from fedgen.spec import Federation
    from fedgen.validate.keyscan import KeyFound
    from fedgen.validate.kustomization import Refusal

SYNC = "sync"  # a directory Config Sync / Argo CD applies
BOOTSTRAP = "bootstrap"  # clusters/<c>/bootstrap: applied once by hand, checked all the same


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def is_object(data: Any) -> bool:
    """A Kubernetes object: a mapping with string apiVersion and kind."""
    return isinstance(data, dict) and isinstance(data.get("apiVersion"), str) and isinstance(data.get("kind"), str)


def meta(data: Mapping[str, Any]) -> Mapping[str, Any]:
    m = data.get("metadata")
    return m if isinstance(m, dict) else {}


def identity(data: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): how objects are matched across build output and source files."""
    m = meta(data)
    ns = m.get("namespace")
    return (
        group_of(str(data.get("apiVersion", ""))),
        str(data.get("kind", "")),
        ns if isinstance(ns, str) else "",
        str(m.get("name", "")),
    )


def ref_of(data: Mapping[str, Any]) -> str:
    _, kind, ns, name = identity(data)
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


@dataclass(frozen=True)
class KObject:
    """One object a sync root builds, and where it came from. Its identity is read once (rules ask often)."""

    data: Mapping[str, Any]
    root: str  # the sync root (or bootstrap) folder that built it
    index: int  # position in that folder's build output
    source: YamlDoc | None  # the repo document it was written in, when found
    fallback_path: str  # the root's kustomization file, for generated objects

    @cached_property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @cached_property
    def group(self) -> str:
        return group_of(self.api_version)

    @cached_property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @cached_property
    def name(self) -> str:
        return str(meta(self.data).get("name", ""))

    @cached_property
    def namespace(self) -> str:
        ns = meta(self.data).get("namespace")
        return ns if isinstance(ns, str) else ""

    @property
    def labels(self) -> Mapping[str, str]:
        labels = meta(self.data).get("labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> Mapping[str, str]:
        ann = meta(self.data).get("annotations")
        return {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.data.get("spec")
        return spec if isinstance(spec, dict) else {}

    @cached_property
    def identity(self) -> tuple[str, str, str, str]:
        return identity(self.data)

    @cached_property
    def ref(self) -> str:
        return ref_of(self.data)

    def location(self, ptr: str) -> tuple[str, int | None]:
        if self.source is None:
            return self.fallback_path, None
        return self.source.path, self.source.line_of(ptr)


@dataclass(frozen=True)
class SyncRoot:
    path: str  # e.g. clusters/acp-dev
    role: str  # SYNC | BOOTSTRAP
    kustomization: str | None  # the kustomization file directly in the folder
    objects: tuple[KObject, ...] = ()
    error: str | None = None  # kustomize's complaint when the build failed
    reachable: frozenset[str] = frozenset()  # repo files the kustomization pulls in
    # paths its kustomizations name that kustomize may not read (kustomization.py); a refused root is not built
    refusals: tuple[Refusal, ...] = ()

    @property
    def cluster(self) -> str:
        parts = self.path.split("/")
        return parts[1] if len(parts) > 1 and parts[0] == "clusters" else self.path

    def of(self, group: str, kind: str) -> tuple[KObject, ...]:
        """The root's objects of one kind, by ref (rules that relate objects look them up, never scan)."""
        return self._by_kind.get((group, kind), ())

    @cached_property
    def _by_kind(self) -> dict[tuple[str, str], tuple[KObject, ...]]:
        found: dict[tuple[str, str], list[KObject]] = defaultdict(list)
        for obj in self.objects:
            found[(obj.group, obj.kind)].append(obj)
        return {k: tuple(sorted(v, key=lambda o: o.ref)) for k, v in found.items()}


@dataclass(frozen=True)
class RepoFile:
    path: str
    text: str | None  # None for binary or oversized files
    docs: tuple[YamlDoc, ...] = ()  # for .yaml/.yml/.json files
    parse_error: str | None = None
    parse_error_line: int | None = None
    keys: tuple[KeyFound, ...] = ()  # private keys in its bytes (keyscan.py: PEM, DER, inside archives)
    uninspectable: str | None = None  # why it could not be inspected completely (size, nesting, an archive bomb)

    @property
    def is_config(self) -> bool:
        return self.path.endswith((".yaml", ".yml", ".json"))


@dataclass(frozen=True)
class RepoLedger:
    """A ledger file of the repo (fedgen.ledger), and what the repo holds of the files it names."""

    path: str  # .fedgen/owned/<federation>.json
    record: Ledger | None  # None when the file is not a ledger (error says why)
    error: str | None = None
    actual: Mapping[str, str | None] = field(default_factory=dict)  # path -> sha256 now (None: missing), for files and shared
    # sha256 of each shared file recomputed from every ledger's recorded contributions (absent: unknown)
    shared_expected: Mapping[str, str] = field(default_factory=dict)

    @property
    def federation(self) -> str | None:
        return self.record.federation if self.record else None

    @property
    def spec(self) -> str | None:  # the spec's path, relative to the repo
        return self.record.spec if self.record else None

    @property
    def files(self) -> Mapping[str, str]:  # path -> sha256 recorded at render time (files it owns alone)
        return self.record.files if self.record else {}

    @property
    def shared(self) -> tuple[str, ...]:  # files it feeds together with other federations
        return self.record.shared if self.record else ()

    @property
    def contributions(self) -> tuple[Any, ...]:  # as recorded (JSON), unchecked
        return self.record.contributions if self.record else ()

    @property
    def owned(self) -> frozenset[str]:
        return self.record.owned if self.record else frozenset()


@dataclass(frozen=True)
class SpecInfo:
    """What validate learns from a ledger's spec without state: enough to cross-check the tree."""

    path: str
    exists: bool
    error: str | None = None  # first spec error, when it does not load
    engine: str | None = None
    repo: str | None = None
    revision: str | None = None
    sealing_scope: str | None = None
    sealing_key_bytes: int | None = None  # RSA modulus size of the sealing certificate
    sealing_error: str | None = None
    server_cluster: str | None = None
    # site clusters with a sealing certificate of their own -> its RSA modulus size in bytes
    cluster_key_bytes: Mapping[str, int] = field(default_factory=dict)
    site_clusters: tuple[str, ...] = ()  # clusters running sites (sealed with their own or a development key)
    # The loaded spec, for the enrollment rules (fedgen.enroll's policy checks take it); None when it did not load.
    federation: Federation | None = field(default=None, compare=False, repr=False)
    # rootCA.pem of the server's rendered startup ConfigMap (what the server trusts), read only when the repo
    # holds enrollment files of this federation; None when not rendered or not readable (other rules say why).
    server_root_pem: bytes | None = field(default=None, compare=False, repr=False)

    def key_bytes_for(self, path: str) -> int | None:
        """The modulus size a SealedSecret at this repo path must be sealed for, when the spec says."""
        parts = path.split("/")
        cluster = parts[1] if len(parts) > 2 and parts[0] == "clusters" else self.server_cluster
        if cluster is not None and cluster in self.cluster_key_bytes:
            return self.cluster_key_bytes[cluster]
        if cluster in self.site_clusters and cluster != self.server_cluster:
            return None  # a development key from the state: only its plausibility can be checked
        return self.sealing_key_bytes


@dataclass(frozen=True)
class LedgerExpectation:
    """What a ledger should record, according to its spec."""

    federation: str
    files: tuple[str, ...]  # the files the spec renders for this federation alone
    contributions: tuple[Any, ...]  # what it feeds the shared files (JSON, as render records it)
    shared: tuple[str, ...]  # the shared files its own contributions feed


@dataclass(frozen=True)
class Rerender:
    """The tree the committed specs render, without the state (see fedgen.validate.rerender)."""

    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)  # owned and shared files
    ledgers: Mapping[str, LedgerExpectation] = field(default_factory=dict)  # by ledger path
    errors: Mapping[str, str] = field(default_factory=dict)  # ledger path -> why its spec could not be rendered
    folders: tuple[str, ...] = ()  # tenants/<t> and clusters/<c> folders fedgen owns (ledgers and specs)
    # Folders whose every federation was rendered again: there kinds and images can be judged.
    checked_folders: tuple[str, ...] = ()
    kinds: frozenset[tuple[str, str]] = frozenset()  # (group, kind) of every object the specs render
    images: frozenset[str] = frozenset()  # the specs' container images


@dataclass(frozen=True)
class EnrollmentZip:
    """A file under enrollment/: where it sits, and what fedgen.enroll's pure checks make of its bytes."""

    path: str
    federation: str | None  # from the path; None when the path is not a documented place (classify)
    kind: str | None  # request | signed (from the path)
    site: str | None  # the site the file name says
    request: RequestInfo | None = field(default=None, compare=False, repr=False)  # passed inspect_request_zip
    signed: SignedInfo | None = field(default=None, compare=False, repr=False)  # passed inspect_signed_zip
    error: str | None = None  # why it is not a well-formed request/signed zip (one line)
    private_key: str | None = None  # set when a private key is inside (the reason)

    @property
    def placed(self) -> bool:
        return self.federation is not None


@dataclass(frozen=True)
class SchemaVerdict:
    obj: KObject
    status: str  # valid | invalid | error | skipped | no-schema
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    files: Mapping[str, RepoFile]
    roots: tuple[SyncRoot, ...]
    ledgers: tuple[RepoLedger, ...] = ()
    specs: Mapping[str, SpecInfo] = field(default_factory=dict)  # by spec path
    interrupted: tuple[str, ...] = ()  # leftovers of an interrupted render
    schema: tuple[SchemaVerdict, ...] = ()
    kubernetes_version: str = ""
    sync_dirs: tuple[str, ...] = ()  # clusters/<c> folders and folders sync objects name, built or not
    now: Any = None  # datetime used for expiry checks (injected, so rules stay pure)
    enrollment: tuple[EnrollmentZip, ...] = ()  # every file under enrollment/, sorted by path
    rerender: Rerender = field(default_factory=Rerender)  # what the specs render, to check the tree against

    @property
    def sync_roots(self) -> tuple[SyncRoot, ...]:
        return tuple(r for r in self.roots if r.role == SYNC)

    def objects(self, *, bootstrap: bool = True) -> Iterator[KObject]:
        for root in self.roots:
            if bootstrap or root.role == SYNC:
                yield from root.objects

    def docs(self) -> Iterator[YamlDoc]:
        for path in sorted(self.files):
            yield from self.files[path].docs

    def owner_of(self, path: str) -> RepoLedger | None:
        for ledger in self.ledgers:
            if path in ledger.owned:
                return ledger
        return None

    def ledger_of(self, federation: str) -> RepoLedger | None:
        """The ledger of a federation: by its recorded name, else by its file name (.fedgen/owned/<name>.json)."""
        for ledger in self.ledgers:
            if ledger.federation == federation:
                return ledger
        for ledger in self.ledgers:
            if ledger.path.rsplit("/", 1)[-1] == f"{federation}.json":
                return ledger
        return None

    def federation_spec(self, federation: str) -> SpecInfo | None:
        """The loaded spec of a federation rendered here (None when unknown or its spec is missing)."""
        ledger = self.ledger_of(federation)
        return self.specs.get(ledger.spec) if ledger is not None and ledger.spec else None

    def platform_objects(self, cluster: str) -> dict[refarch.ObjectId, str]:
        """What the reference architecture's own Config Sync manages on this cluster (object -> whose), as
        the specs rendered here say: the tenants fedgen feeds to its Terraform, and the gateway and mesh.
        Empty when no spec puts the cluster on the reference architecture (or no spec loads)."""
        tenants: set[str] = set()
        on_platform = False
        for info in self.specs.values():
            fed = info.federation
            if fed is None:
                continue
            for c in fed.clusters:
                if c.name != cluster or not c.on_reference_architecture:
                    continue
                on_platform = True
                if fed.server.cluster == cluster:
                    tenants.add(fed.server.tenant)
                tenants.update(s.namespace for s in fed.cluster_sites if s.cluster == cluster)
        return refarch.managed_objects(tenants) if on_platform else {}

    def spec_for(self, path: str) -> SpecInfo | None:
        ledger = self.owner_of(path)
        if ledger is not None and ledger.spec:
            return self.specs.get(ledger.spec)
        if len(self.specs) == 1:
            return next(iter(self.specs.values()))
        return None
