"""FG51x: the GitOps engine's own objects. RootSync/RepoSync objects point at this repository, at a sync root
that exists and belongs to their cluster, and sit where Config Sync reads them; for Argo CD every object an
Application syncs is allowed by its AppProject, as Argo CD's own checks decide it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import as_dict, as_list, scope
from fedgen.validate.model import KObject, Model
from fedgen.validate.rule import Hit, Rule, on
from fedgen.validate.rules.gitops import under

CONFIG_SYNC_NAMESPACE = "config-management-system"


def _sync_objects(model: Model) -> Iterator[tuple[KObject, str, str | None, str | None, str | None]]:
    """(object, pointer of its folder, folder, repo, revision) for RootSync, RepoSync and Application."""
    for obj in model.objects():
        spec = obj.spec
        if obj.group == "configsync.gke.io" and obj.kind in ("RootSync", "RepoSync"):
            source_type = str(spec.get("sourceType", "git"))
            source = as_dict(spec.get(source_type))
            url_key = "repo" if source_type == "git" else "image"
            yield obj, f"/spec/{source_type}/dir", _str(source.get("dir")), _str(source.get(url_key)), _str(source.get("revision"))
        elif obj.group == "argoproj.io" and obj.kind == "Application":
            source = as_dict(spec.get("source"))
            yield obj, "/spec/source/path", _str(source.get("path")), _str(source.get("repoURL")), _str(source.get("targetRevision"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _norm(folder: str | None) -> str:
    return posixpath.normpath((folder or "").strip().strip("/")) if folder and folder.strip("/ ") not in ("", ".") else "."


def _same_repo(a: str | None, b: str | None) -> bool:
    def clean(url: str) -> str:
        return url.strip().rstrip("/").removesuffix(".git")

    return a is None or b is None or clean(a) == clean(b)


def _spec_of(model: Model, obj: KObject) -> Any:
    return model.spec_for(obj.location("")[0])


def sync_dir_missing(model: Model) -> Iterator[Hit]:
    for obj, ptr, folder, repo, _ in _sync_objects(model):
        spec = _spec_of(model, obj)
        if spec is not None and not _same_repo(repo, spec.repo):
            continue  # another repository: FG512 says so
        target = _norm(folder)
        if target != "." and not any(under(p, target) for p in model.files):
            yield on(obj, ptr, f"syncs folder {target!r}, which does not exist in the repo")


def sync_dir_not_its_cluster(model: Model) -> Iterator[Hit]:
    for obj, ptr, folder, _, _ in _sync_objects(model):
        if obj.kind != "RootSync":
            continue
        parts = obj.root.split("/")
        if len(parts) >= 2 and parts[0] == "clusters":
            expected = f"clusters/{parts[1]}"
            if _norm(folder) != expected:
                yield on(obj, ptr, f"RootSync of {expected} syncs {_norm(folder)!r}; it must sync its own cluster folder {expected}")


def sync_source_mismatch(model: Model) -> Iterator[Hit]:
    for obj, ptr, _, repo, revision in _sync_objects(model):
        spec = _spec_of(model, obj)
        if spec is None or spec.repo is None:
            continue
        base = ptr.rsplit("/", 1)[0]
        if not _same_repo(repo, spec.repo):
            key = "repoURL" if obj.kind == "Application" else "repo"
            yield on(obj, f"{base}/{key}", f"syncs repository {repo!r}, but {spec.path} says gitops.repo {spec.repo!r}")
        if revision is not None and spec.revision is not None and revision != spec.revision:
            key = "targetRevision" if obj.kind == "Application" else "revision"
            yield on(obj, f"{base}/{key}", f"syncs revision {revision!r}, but {spec.path} says gitops.revision {spec.revision!r}")


def sync_object_placement(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        if obj.group != "configsync.gke.io":
            continue
        fmt = obj.spec.get("sourceFormat")
        if obj.kind == "RootSync":
            if obj.namespace and obj.namespace != CONFIG_SYNC_NAMESPACE:
                yield on(obj, "/metadata/namespace", f"a RootSync must live in {CONFIG_SYNC_NAMESPACE}, not {obj.namespace}")
            if fmt not in (None, "unstructured"):
                yield on(obj, "/spec/sourceFormat", f"sourceFormat {fmt!r}: fedgen's layout is unstructured (hierarchy needs system/ and namespaces/ folders)")
        elif obj.kind == "RepoSync":
            if obj.namespace == CONFIG_SYNC_NAMESPACE:
                yield on(obj, "/metadata/namespace", f"a RepoSync belongs in the namespace it syncs, not {CONFIG_SYNC_NAMESPACE}")
            if fmt not in (None, "unstructured"):
                yield on(obj, "/spec/sourceFormat", "a RepoSync only supports sourceFormat unstructured")


def root_sync_self_managed(model: Model) -> Iterator[Hit]:
    for root in model.sync_roots:
        for obj in root.objects:
            if obj.group == "configsync.gke.io" and obj.kind == "RootSync":
                target = _norm(_str(as_dict(obj.spec.get(str(obj.spec.get("sourceType", "git")))).get("dir")))
                if target == root.path:
                    yield on(
                        obj,
                        "",
                        f"RootSync {obj.name} is built by the sync root it syncs ({root.path}): it would manage itself; keep it in {root.path}/bootstrap",
                    )


DEFAULT_PROJECT = "default"  # Argo CD's built-in project allows everything


def _glob(pattern: Any, value: str) -> bool:
    return isinstance(pattern, str) and fnmatchcase(value, pattern)


def _listed(entries: Any, group: str, kind: str) -> bool:
    """Argo CD's isResourceInList: a glob on kind and one on group."""
    return any(_glob(as_dict(e).get("kind"), kind) and _glob(as_dict(e).get("group"), group) for e in as_list(entries))


def _kind_denied(project: KObject, obj: KObject, namespaced: bool) -> str | None:
    """Why the project refuses this group/kind (Argo CD's IsGroupKindPermitted), or None."""
    spec, gk = project.spec, f"{{group: {obj.group!r}, kind: {obj.kind}}}"
    white, black = ("namespaceResourceWhitelist", "namespaceResourceBlacklist") if namespaced else ("clusterResourceWhitelist", "clusterResourceBlacklist")
    allowed = spec.get(white)
    # Namespaced kinds: no whitelist at all allows every kind. Cluster-scoped: only what is whitelisted.
    if (allowed is not None or not namespaced) and not _listed(allowed, obj.group, obj.kind):
        return f"{white} does not list {gk}"
    if _listed(spec.get(black), obj.group, obj.kind):
        return f"{black} lists {gk}"
    return None


def _destination_denied(project: KObject, server: str, name: str, namespace: str) -> str | None:
    """Why the project refuses a namespace on the Application's cluster (glob destinations, '!' denies), or None."""
    allowed = denied = False
    for dest in map(as_dict, as_list(project.spec.get("destinations"))):
        cluster_ok = (server and _glob(dest.get("server"), server)) or (name and _glob(dest.get("name"), name))
        pattern = dest.get("namespace")
        if not cluster_ok or not isinstance(pattern, str):
            continue
        if pattern.startswith("!"):
            denied = denied or fnmatchcase(namespace, pattern[1:])
        else:
            allowed = allowed or fnmatchcase(namespace, pattern)
    if allowed and not denied:
        return None
    return f"destinations do not allow namespace {namespace!r} on {server or name!r}"


def argocd_project_denies(model: Model) -> Iterator[Hit]:
    projects = {(o.namespace, o.name): o for o in model.objects() if o.group == "argoproj.io" and o.kind == "AppProject"}
    roots = {r.path: r for r in model.roots}
    for app in model.objects():
        if app.group != "argoproj.io" or app.kind != "Application":
            continue
        name = _str(app.spec.get("project")) or DEFAULT_PROJECT
        if name == DEFAULT_PROJECT:
            continue
        project = projects.get((app.namespace, name))
        if project is None:
            yield on(
                app, "/spec/project", f"project {name!r} is not declared in the repo (AppProject {app.namespace}/{name}): Argo CD will not sync {app.name}"
            )
            continue
        source = as_dict(app.spec.get("source"))
        repo = _str(source.get("repoURL")) or ""
        if not any(_glob(p, repo) or _same_repo(_str(p), repo) for p in as_list(project.spec.get("sourceRepos"))):
            yield on(app, "/spec/source/repoURL", f"AppProject {name} does not list {repo!r} in sourceRepos")
        root = roots.get(_norm(_str(source.get("path"))))
        if root is None:
            continue  # FG510 says the folder is missing
        dest = as_dict(app.spec.get("destination"))
        server, cluster_name = _str(dest.get("server")) or "", _str(dest.get("name")) or ""
        for obj in root.objects:
            kind_scope = scope(obj)
            namespaced = kind_scope == "Namespaced" or (kind_scope is None and bool(obj.namespace))
            why = _kind_denied(project, obj, namespaced)
            if why is None and namespaced and obj.namespace:
                why = _destination_denied(project, server, cluster_name, obj.namespace)
            if why is not None:
                yield on(obj, "", f"{obj.ref} is synced by Application {app.name}, but its AppProject {name} refuses it: {why}")


RULES = (
    Rule(
        "FG510",
        "sync-dir-missing",
        ERROR,
        "RootSync/RepoSync/Application objects sync a folder that exists in the repo.",
        "Point spec.git.dir (or spec.source.path) at the cluster's folder, clusters/<cluster>.",
        sync_dir_missing,
    ),
    Rule(
        "FG511",
        "sync-dir-not-its-cluster",
        ERROR,
        "The RootSync kept with a cluster syncs that cluster's folder.",
        "Set spec.git.dir to clusters/<cluster> of the folder the RootSync is kept in.",
        sync_dir_not_its_cluster,
    ),
    Rule(
        "FG512",
        "sync-source-mismatch",
        ERROR,
        "Sync objects use the repository and revision the spec names.",
        "Change gitops.repo/revision in the spec and re-render, rather than editing the RootSync.",
        sync_source_mismatch,
    ),
    Rule(
        "FG513",
        "sync-object-placement",
        ERROR,
        "RootSync lives in config-management-system, RepoSync elsewhere, both unstructured.",
        "Fix the namespace and sourceFormat as the message says.",
        sync_object_placement,
    ),
    Rule(
        "FG514",
        "root-sync-self-managed",
        ERROR,
        "No RootSync is built by the sync root it syncs.",
        "Keep the RootSync in clusters/<cluster>/bootstrap, outside what the sync root's kustomization builds.",
        root_sync_self_managed,
    ),
    Rule(
        "FG516",
        "argocd-project-denies",
        ERROR,
        "Every object an Argo CD Application syncs is allowed by its AppProject (source repo, kinds, destination namespaces).",
        "Render again (fedgen's AppProject lists every kind and namespace it renders), or add the kind or namespace to the AppProject.",
        argocd_project_denies,
    ),
)
