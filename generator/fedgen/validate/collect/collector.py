"""Collect the model of a repo: read it, run each sync root through kubectl kustomize as its applier does,
map objects to their source, and run kubeconform once over everything kustomize made. The part of validate
that touches the world; what it collects is laid out by kind in this package (files, ledgers, specs,
kustomize, syncroots, schemas, enrollment).

Order, for speed (validate is a PR check; see ModelCollector): NVFlare's worker starts first, then kubectl
kustomize as soon as the ledgers and each spec's GitOps engine are known, before anything heavy is imported
or parsed; the specs load and the worker gets its request while kustomize runs; kubeconform starts on what
kustomize prints as soon as it is done; meanwhile the repo is read, and the engine applies every rule that
does not need kubeconform's verdicts before waiting for them (PendingModel).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.errors import ExternalError, FedgenError
from fedgen.ledger import read_ledger_files
from fedgen.validate.collect.enrollment import read_enrollment
from fedgen.validate.collect.kustomize import KustomizeRuns, kustomization_in
from fedgen.validate.collect.ledgers import finish_ledgers, preliminary_ledgers
from fedgen.validate.collect.schemas import SchemaCheck, Verdicts
from fedgen.validate.collect.specs import quick_engine, read_spec, spec_hint, static_kits
from fedgen.validate.collect.syncroots import assemble_roots, cluster_folders, engine_of, plan_roots, sync_dirs
from fedgen.validate.model import Model, RepoLedger, SpecInfo
from fedgen.validate.scan import list_files

if TYPE_CHECKING:
    from fedgen.provision.static import StaticKits

INTERRUPT_MARKERS = (".fedgen/journal.json", ".fedgen/journal.json.tmp", ".fedgen/tmp")


@dataclass(frozen=True)
class PendingModel:
    """The model without kubeconform's verdicts, which are still being computed; complete() waits for them."""

    model: Model
    verdicts: Verdicts

    def complete(self) -> Model:
        return replace(self.model, schema=self.verdicts())


class ModelCollector:
    """Collecting the model of a repo, started at once: kubectl kustomize of every clusters/<c>/ folder (and
    its bootstrap), then kubeconform on what they print, run in the background while the start loads the
    specs (and asks NVFlare's worker for their kits) and finish() reads the repo and maps objects to their
    source. A missing tool is raised by finish(), so the
    caller's own input checks (the allowlist) still come first. Use as a context manager."""

    def __init__(self, repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> None:
        self.repo = repo
        self.kubernetes_version = kubernetes_version
        self.now = now
        self.found = read_ledger_files(repo)
        early_ledgers = preliminary_ledgers(self.found)
        spec_paths = [ledger.spec for ledger in early_ledgers if ledger.spec]
        self.static: StaticKits | None = None
        if spec_paths:  # NVFlare's worker is the longest way to the end: it starts first (see validate/rerender.py)
            from fedgen.provision.static import StaticKits

            self.static = StaticKits(spec_hint(repo, spec) for spec in spec_paths)
        self.paths = list_files(repo)  # what kustomize may read, and what is read below
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fedgen-kustomize")
        self.kustomize = KustomizeRuns(repo, self.pool, self.paths)
        engines = {spec: quick_engine(repo, spec, self.kustomize.guard) for spec in spec_paths}
        quick = {spec: SpecInfo(path=spec, exists=True, engine=engine) for spec, engine in engines.items()}
        self.cluster_dirs = cluster_folders(repo)
        self.schema: SchemaCheck | None = None
        self.error: FedgenError | None = None
        try:
            self._start(plan_roots(repo, self.cluster_dirs, self.cluster_dirs), quick, early_ledgers)
            self.schema = SchemaCheck(kubernetes_version)
            self.schema.check_after(self.kustomize.futures.values())
        except ExternalError as exc:
            self.error = exc
        # The specs load and the worker gets its request while kustomize builds: the re-render waits for its
        # answer, the ledgers' digests (which import the renderer) do not.
        self.specs = {spec: read_spec(repo, spec, self.kustomize.guard) for spec in spec_paths}
        self.static_answers = static_kits(self.static, repo, self.specs) if self.static else dict

    def _start(self, plan: list[tuple[str, str]], specs: Mapping[str, SpecInfo], ledgers: tuple[RepoLedger, ...]) -> None:
        for folder, _ in plan:
            kfile = kustomization_in(self.repo / folder)
            if kfile is not None:
                self.kustomize.start(folder, load_restrictor=engine_of(kfile.relative_to(self.repo).as_posix(), specs, ledgers) != "argocd")

    def finish(self) -> PendingModel:
        """Read everything, wait for kustomize, start kubeconform on what is left; kubeconform's verdicts
        are the PendingModel's to wait for."""
        if self.error is not None:
            raise self.error
        assert self.schema is not None
        repo = self.repo
        paths = self.paths
        ledgers = finish_ledgers(repo, self.found, self.kustomize.guard.listed)
        specs = self.specs
        from fedgen.validate.collect.files import read_files  # here: its import would delay the worker's start

        files = read_files(repo, paths, self.kustomize.guard.parsed)
        folders = sorted(set(self.cluster_dirs) | {d for d in sync_dirs(files) if (repo / d).is_dir()})
        plan = plan_roots(repo, folders, self.cluster_dirs)
        self._start(plan, specs, ledgers)
        enrollment, specs = read_enrollment(repo, paths, specs, ledgers)
        outputs = self.kustomize.results()
        roots = assemble_roots(repo, plan, files, outputs, self.kustomize.checks)
        objects = [o for r in roots for o in r.objects]
        verdicts = self.schema.verdicts(objects)
        from fedgen.validate.rerender import rerender

        rendered = rerender(files, ledgers, specs, self.static_answers())
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

    def __enter__(self) -> ModelCollector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_model(repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> PendingModel:
    """The model of a repo, kubeconform's verdicts still being computed (see ModelCollector)."""
    with ModelCollector(repo, kubernetes_version=kubernetes_version, now=now) as started:
        return started.finish()


def collect_model(repo: Path, *, kubernetes_version: str, now: dt.datetime | None = None) -> Model:
    """Read everything, run every sync root through kubectl kustomize, run kubeconform: the complete model."""
    return open_model(repo, kubernetes_version=kubernetes_version, now=now).complete()
