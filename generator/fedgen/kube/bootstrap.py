"""`fedgen bootstrap CLUSTER`: apply clusters/<cluster>/bootstrap (what points the GitOps engine at the sync
root) with server-side apply, field manager `fedgen`: the one step the engine cannot do for itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.kube.client import DEFAULT_TIMEOUT, Kube
from fedgen.kube.contexts import ClusterRef, kubeconfig_contexts, parse_context_options, resolve_contexts
from fedgen.render.layout import bootstrap_dir

FIELD_MANAGER = "fedgen"


@dataclass(frozen=True)
class Applied:
    object: str  # Kind namespace/name
    action: str  # created | configured | unchanged (| the same with "(dry run)")


@dataclass(frozen=True)
class BootstrapResult:
    cluster: str
    context: str
    server: str
    applied: tuple[Applied, ...]


def bootstrap(
    *, cluster: str, repo: Path, kubeconfig: Path | None = None, contexts: Sequence[str] = (), dry_run: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> BootstrapResult:
    from fedgen.validate.collect.kustomize import kustomize

    repo = repo.resolve()
    folder = bootstrap_dir(cluster)
    if not (repo / folder / "kustomization.yaml").is_file():
        known = sorted(p.parent.parent.name for p in (repo / "clusters").glob("*/bootstrap/kustomization.yaml"))
        raise InputError(f"{repo / folder} has no kustomization.yaml: no cluster {cluster!r} rendered in {repo} (clusters: {', '.join(known) or 'none'})")
    objects, error = kustomize(repo, folder, load_restrictor=False)
    if error is not None:
        raise InputError(f"kubectl kustomize {folder} failed: {error}")
    available, where = kubeconfig_contexts(kubeconfig)
    context = resolve_contexts([ClusterRef(cluster)], available, parse_context_options(contexts, [cluster]), where)[cluster]
    applied = []
    with Kube(cluster=cluster, context=context, kubeconfig=kubeconfig, timeout=timeout) as kube:
        for obj in objects:
            meta = obj.get("metadata") or {}
            kind, namespace, name = str(obj.get("kind")), meta.get("namespace"), str(meta.get("name"))
            before = kube.get(str(obj.get("apiVersion")), kind, namespace, name)
            after = kube.apply(obj, field_manager=FIELD_MANAGER, dry_run=dry_run)
            if before is None:
                action = "created"
            elif _comparable(before) == _comparable(after):
                action = "unchanged"
            else:
                action = "configured"
            applied.append(Applied(f"{kind} {namespace + '/' if namespace else ''}{name}", action + (" (dry run)" if dry_run else "")))
        server = kube.server
    return BootstrapResult(cluster, context, server, tuple(applied))


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server changes on every write (a dry run bumps no resourceVersion)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields", "generation")}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}
