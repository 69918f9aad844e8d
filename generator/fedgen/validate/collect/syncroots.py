"""The sync roots: clusters/<cluster>/ and every folder a RootSync, RepoSync or Application names, each with
its bootstrap folder; the objects `kubectl kustomize` made of each, mapped to the repo document they were
written in."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedgen.validate.collect.kustomize import Kustomized, kustomization_in
from fedgen.validate.kustomization import RootCheck
from fedgen.validate.model import BOOTSTRAP, SYNC, KObject, RepoFile, RepoLedger, SpecInfo, SyncRoot, identity, is_object
from fedgen.validate.yamlsource import YamlDoc

SYNC_KINDS = {("configsync.gke.io", "RootSync"), ("configsync.gke.io", "RepoSync"), ("argoproj.io", "Application")}


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


def sync_dirs(files: Mapping[str, RepoFile]) -> set[str]:
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


def assemble_roots(
    repo: Path, plan: list[tuple[str, str]], files: Mapping[str, RepoFile], outputs: Mapping[str, Kustomized], checks: Mapping[str, RootCheck]
) -> tuple[SyncRoot, ...]:
    """Each planned folder with its objects (outputs: what kubectl kustomize made of each folder it ran on)."""
    index = SourceIndex(doc for f in files.values() for doc in f.docs)
    return tuple(_root(repo, folder, role, files, index, outputs.get(folder), checks.get(folder)) for folder, role in plan)


def engine_of(kustomization: str, specs: Mapping[str, SpecInfo], ledgers: tuple[RepoLedger, ...]) -> str:
    """The GitOps engine of the federation whose ledger lists this kustomization (Config Sync when none)."""
    for ledger in ledgers:
        spec = specs.get(ledger.spec) if ledger.spec else None
        if kustomization in ledger.owned and spec is not None and spec.engine:
            return str(spec.engine)
    return "config-sync"


def _root(
    repo: Path, folder: str, role: str, files: Mapping[str, RepoFile], index: SourceIndex, output: Kustomized | None, check: RootCheck | None
) -> SyncRoot:
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
    if output is None:  # refused: kustomize did not run
        return SyncRoot(folder, role, kustomization, (), None, check.reachable, check.refusals)
    built, error = output
    objects_t = tuple(KObject(data, folder, i, index.find(data, check.reachable), kustomization) for i, data in enumerate(built))
    return SyncRoot(folder, role, kustomization, objects_t, error, check.reachable)
