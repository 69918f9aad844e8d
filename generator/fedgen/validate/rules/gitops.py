"""FG5xx: what Config Sync (and Argo CD) need from the repo layout and the objects it applies.

Mirrors the nomos vet rules that bite fedgen's layout: a kustomization directly in each sync root (KNV1068),
every .yaml/.yml/.json in a sync root is an object, namespaced objects carry a namespace (Config Sync would
put them in default), cluster-scoped ones do not, no reserved metadata or server-set fields, no duplicates,
and RootSync/RepoSync/Application objects consistent with the repo and the spec. For Argo CD, every object an
Application syncs must be allowed by its AppProject, as Argo CD's own checks decide it. On the reference
architecture nothing its own Config Sync already manages is declared again (KNV1060).
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import as_dict, as_list, scope
from fedgen.validate.model import BOOTSTRAP, KObject, Model, is_object
from fedgen.validate.rule import Hit, Rule, at, on
from fedgen.validate.yamlsource import pointer

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
RESERVED_PREFIXES = ("configmanagement.gke.io/", "configsync.gke.io/")
ALLOWED_RESERVED = frozenset(
    {
        "configmanagement.gke.io/managed",
        "configmanagement.gke.io/cluster-selector",
        "configmanagement.gke.io/namespace-selector",
        "configsync.gke.io/cluster-name-selector",
        "configsync.gke.io/deletion-propagation-policy",
    }
)
SERVER_SET = ("uid", "resourceVersion", "generation", "selfLink", "managedFields", "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds")
RESERVED_NAMESPACES = ("config-management-system", "config-management-monitoring", "resource-group-system")
CONFIG_SYNC_NAMESPACE = "config-management-system"


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def _folder_exists(model: Model, folder: str) -> bool:
    return any(_under(p, folder) for p in model.files)


def sync_root_kustomization_missing(model: Model) -> Iterator[Hit]:
    for root in model.sync_roots:
        if root.kustomization is None:
            nested = sorted(p for p in model.files if _under(p, root.path) and posixpath.basename(p) in KUSTOMIZATION_FILES)
            detail = f" (one only in a sub-folder, {nested[0]}, is Config Sync error KNV1068)" if nested else ""
            yield at(root.path, None, f"sync root {root.path} has no kustomization file directly in it{detail}")


def sync_root_build_failed(model: Model) -> Iterator[Hit]:
    for root in model.roots:
        if root.error and root.kustomization:
            yield at(root.kustomization, 1, f"kustomize build of {root.path} fails: {root.error}")


def _sync_folders(model: Model) -> list[str]:
    return sorted(model.sync_dirs)


def non_object_in_sync_root(model: Model) -> Iterator[Hit]:
    folders = _sync_folders(model)
    for path, repo_file in sorted(model.files.items()):
        if not repo_file.is_config or posixpath.basename(path) in KUSTOMIZATION_FILES or repo_file.parse_error:
            continue
        if not any(_under(path, f) for f in folders):
            continue
        bad = next((d for d in repo_file.docs if not is_object(d.data)), None)
        if bad is not None:
            what = "Terraform variables" if path.endswith((".tfvars.json", ".tfvars")) else "not a Kubernetes object"
            yield at(path, bad.line, f"{what} inside a sync root: Config Sync reads every .yaml/.yml/.json there and fails on it")


def namespace_missing(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        if scope(obj) == "Namespaced" and not obj.namespace:
            yield on(obj, "/metadata", f"namespaced {obj.kind} without metadata.namespace: Config Sync would put it in 'default'")


def cluster_scoped_namespaced(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        if scope(obj) == "Cluster" and obj.namespace:
            yield on(obj, "/metadata/namespace", f"cluster-scoped {obj.kind} declares namespace {obj.namespace!r}")


def reserved_metadata(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        for field, values in (("labels", obj.labels), ("annotations", obj.annotations)):
            for key in sorted(values):
                if key.startswith(RESERVED_PREFIXES) and key not in ALLOWED_RESERVED:
                    yield on(obj, pointer("metadata", field, key), f"{field[:-1]} {key} uses a prefix Config Sync reserves for itself")


def server_set_field(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        metadata = as_dict(obj.data.get("metadata"))
        for key in SERVER_SET:
            if key in metadata:
                yield on(obj, f"/metadata/{key}", f"metadata.{key} is set by the API server; a declared value makes the apply fail or fight")
        if metadata.get("creationTimestamp") is not None:
            yield on(obj, "/metadata/creationTimestamp", "metadata.creationTimestamp is set by the API server")
        if obj.data.get("status"):
            yield on(obj, "/status", "status is written by controllers, not declared")


def reserved_namespace(model: Model) -> Iterator[Hit]:
    for root in model.sync_roots:
        for obj in root.objects:
            if obj.namespace in RESERVED_NAMESPACES and (obj.group, obj.kind) not in (("configsync.gke.io", "RootSync"), ("", "Secret")):
                yield on(obj, "/metadata/namespace", f"{obj.namespace} is reserved for Config Sync itself")


def platform_managed_object(model: Model) -> Iterator[Hit]:
    for root in model.roots:
        managed = model.platform_objects(root.cluster)
        for obj in root.objects:
            owner = managed.get(obj.identity)
            if owner is not None:
                yield on(
                    obj,
                    "",
                    f"{obj.ref} is managed by the reference architecture's own Config Sync on cluster {root.cluster} ({owner}): "
                    "declaring it here makes two managers fight over it (KNV1060)",
                )


def duplicate_object(model: Model) -> Iterator[Hit]:
    by_cluster: dict[str, list[KObject]] = defaultdict(list)
    for root in model.roots:
        by_cluster[root.cluster].extend(root.objects)
    for _, objects in sorted(by_cluster.items()):
        seen: dict[tuple[str, str, str, str], KObject] = {}
        for obj in objects:
            first = seen.setdefault(obj.identity, obj)
            if first is not obj:
                where = first.location("")[0]
                yield on(obj, "", f"{obj.ref} is declared twice for cluster {obj.root.split('/')[1] if '/' in obj.root else obj.root} (also in {where})")


# ------------------------------------------------------------------------------------------ sync objects


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
        if target != "." and not _folder_exists(model, target):
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


# ------------------------------------------------------------------------------------------ Argo CD projects

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


def kustomization_reads_outside(model: Model) -> Iterator[Hit]:
    for root in model.roots:
        for refusal in root.refusals:
            yield at(refusal.path, refusal.line, f"{refusal.message}; {root.path} is not built", refusal.pointer)


def config_file_unparsable(model: Model) -> Iterator[Hit]:
    reachable = {p for root in model.roots for p in root.reachable}
    folders = _sync_folders(model) + [r.path for r in model.roots if r.role == BOOTSTRAP]
    for path, repo_file in sorted(model.files.items()):
        if repo_file.parse_error and (path in reachable or any(_under(path, f) for f in folders)):
            yield at(path, repo_file.parse_error_line, repo_file.parse_error)


RULES = (
    Rule(
        "FG501",
        "sync-root-kustomization-missing",
        ERROR,
        "Every sync root has a kustomization file directly in it.",
        "Add kustomization.yaml to the folder the RootSync syncs (fedgen render writes clusters/<cluster>/kustomization.yaml).",
        sync_root_kustomization_missing,
    ),
    Rule(
        "FG502",
        "sync-root-build-failed",
        ERROR,
        "Every sync root builds with kustomize as its applier builds it.",
        "Fix the kustomization as kustomize's message says (kubectl kustomize --load-restrictor=LoadRestrictionsNone <dir>).",
        sync_root_build_failed,
    ),
    Rule(
        "FG503",
        "non-object-in-sync-root",
        ERROR,
        "Every .yaml/.yml/.json inside a sync root is a Kubernetes object (no tfvars, no config files).",
        "Move the file out of the sync root (Terraform variables belong in terraform/).",
        non_object_in_sync_root,
    ),
    Rule(
        "FG504",
        "namespace-missing",
        ERROR,
        "Namespaced objects declare their namespace.",
        "Set metadata.namespace (or a namespace: in the kustomization).",
        namespace_missing,
    ),
    Rule(
        "FG505",
        "cluster-scoped-namespaced",
        ERROR,
        "Cluster-scoped objects declare no namespace.",
        "Remove metadata.namespace from the cluster-scoped object.",
        cluster_scoped_namespaced,
    ),
    Rule(
        "FG506",
        "reserved-metadata",
        ERROR,
        "No label or annotation uses a prefix Config Sync reserves.",
        "Remove the configmanagement.gke.io/ or configsync.gke.io/ label or annotation.",
        reserved_metadata,
    ),
    Rule(
        "FG507",
        "server-set-field",
        ERROR,
        "No field the API server sets (uid, resourceVersion, status, ...) is declared.",
        "Delete the field; it was probably copied from kubectl get -o yaml.",
        server_set_field,
    ),
    Rule(
        "FG508",
        "reserved-namespace",
        ERROR,
        "Sync roots declare nothing in Config Sync's own namespaces.",
        "Move the object to another namespace; Config Sync's namespaces are managed by its installation.",
        reserved_namespace,
    ),
    Rule(
        "FG509",
        "duplicate-object",
        ERROR,
        "No object is declared twice for one cluster (sync root and bootstrap together).",
        "Keep one declaration of the object.",
        duplicate_object,
    ),
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
        "FG515",
        "config-file-unparsable",
        ERROR,
        "YAML/JSON files in sync roots and those their kustomizations pull in parse.",
        "Fix the syntax at the line given.",
        config_file_unparsable,
    ),
    Rule(
        "FG516",
        "argocd-project-denies",
        ERROR,
        "Every object an Argo CD Application syncs is allowed by its AppProject (source repo, kinds, destination namespaces).",
        "Render again (fedgen's AppProject lists every kind and namespace it renders), or add the kind or namespace to the AppProject.",
        argocd_project_denies,
    ),
    Rule(
        "FG517",
        "platform-managed-object",
        ERROR,
        "Sync roots declare nothing the reference architecture's own Config Sync manages on that cluster (tenant baselines, gateway, mesh).",
        "Remove the object (fedgen render leaves these out on the reference architecture), or set the cluster's platform kind to standalone if the platform does not run there.",
        platform_managed_object,
    ),
    Rule(
        "FG518",
        "kustomization-reads-outside",
        ERROR,
        "Every path a kustomization names is relative and leads to a file of the repository (no URL or remote base, no absolute path, no way out, no symbolic link), and no kustomization runs helm or a plugin.",
        "Vendor remote bases and charts into the repository and name files by relative paths inside it; validate does not build a sync root whose kustomizations read anything else.",
        kustomization_reads_outside,
    ),
)
