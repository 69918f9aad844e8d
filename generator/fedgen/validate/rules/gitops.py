"""FG5xx: what Config Sync (and Argo CD) need from the repo layout and the objects it applies.

Mirrors the nomos vet rules that bite fedgen's layout: a kustomization directly in each sync root (KNV1068),
every .yaml/.yml/.json in a sync root is an object, namespaced objects carry a namespace (Config Sync would
put them in default), cluster-scoped ones do not, no reserved metadata or server-set fields, no duplicates.
On the reference architecture nothing its own Config Sync already manages is declared again (KNV1060).
The engine's own objects (RootSync/RepoSync, Argo CD Applications and AppProjects) are checked in
gitops_engine.py.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterator

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import as_dict, scope
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


def under(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip("/") + "/")


def sync_root_kustomization_missing(model: Model) -> Iterator[Hit]:
    for root in model.sync_roots:
        if root.kustomization is None:
            nested = sorted(p for p in model.files if under(p, root.path) and posixpath.basename(p) in KUSTOMIZATION_FILES)
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
        if not any(under(path, f) for f in folders):
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


# ------------------------------------------------------------------------------------------ Argo CD projects


def kustomization_reads_outside(model: Model) -> Iterator[Hit]:
    for root in model.roots:
        for refusal in root.refusals:
            yield at(refusal.path, refusal.line, f"{refusal.message}; {root.path} is not built", refusal.pointer)


def config_file_unparsable(model: Model) -> Iterator[Hit]:
    reachable = {p for root in model.roots for p in root.reachable}
    folders = _sync_folders(model) + [r.path for r in model.roots if r.role == BOOTSTRAP]
    for path, repo_file in sorted(model.files.items()):
        if repo_file.parse_error and (path in reachable or any(under(path, f) for f in folders)):
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
        "FG515",
        "config-file-unparsable",
        ERROR,
        "YAML/JSON files in sync roots and those their kustomizations pull in parse.",
        "Fix the syntax at the line given.",
        config_file_unparsable,
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
