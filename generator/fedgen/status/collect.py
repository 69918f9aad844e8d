"""`fedgen status`: ask every cluster of a federation (and optionally its NVFlare server) how it is doing.

The I/O edge of the status package: reads the spec, the repo's HEAD and its built sync roots, the live
objects (kubernetes client), the FLARE API; the checks themselves are pure functions in the sibling modules.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedgen.errors import ExternalError, InputError
from fedgen.kube import ClusterRef, ClusterUnreachable, CredentialsRefused, Kube, kubeconfig_contexts, parse_context_options, resolve_contexts
from fedgen.kube.client import DEFAULT_TIMEOUT
from fedgen.render.argocd import ARGOCD_NAMESPACE, project_name
from fedgen.render.layout import CONFIG_SYNC_NAMESPACE, ROOT_SYNC_NAME, bootstrap_dir, cluster_dir
from fedgen.render.shared import contributions
from fedgen.spec import Federation, load_federation
from fedgen.status import address, admin, engine, objects, workloads
from fedgen.status.model import Check, ClusterStatus, Problem, StatusReport

Obj = dict[str, Any]
GIT_TIMEOUT = 30


# ------------------------------------------------------------------------------------------------ repo


def repo_head(repo: Path) -> str:
    """`git rev-parse HEAD` of the repo: the commit the engine should have synced."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "HEAD^{commit}"], capture_output=True, text=True, timeout=GIT_TIMEOUT)  # noqa: S603,S607
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExternalError(f"git rev-parse HEAD in {repo} failed: {exc}") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[:200]
        raise InputError(f"--repo {repo}: not a git repository with a commit ({detail}); status compares what the cluster synced with HEAD")
    return proc.stdout.strip()


def uncommitted(repo: Path, paths: Sequence[str]) -> list[str]:
    """Rendered files that differ from HEAD (the cluster can only ever sync commits)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all", "--", *paths], capture_output=True, text=True, timeout=GIT_TIMEOUT
        )  # noqa: S603,S607
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(line[3:] for line in proc.stdout.splitlines() if len(line) > 3)


def kustomized(repo: Path, folder: str, engine_name: str) -> list[Obj]:
    """The objects of a folder as the engine builds it (kubectl kustomize)."""
    from fedgen.validate.collect.kustomize import kustomize

    if not (repo / folder).is_dir():
        raise InputError(f"{repo / folder} does not exist: run fedgen render for this spec into --repo {repo}")
    built, error = kustomize(repo, folder, load_restrictor=engine_name == "config-sync")
    if error is not None:
        raise InputError(f"kubectl kustomize {folder} failed: {error} (run fedgen validate)")
    return built


# --------------------------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class Target:
    cluster: str
    context: str
    role: str  # server | sites


def targets(fed: Federation, kubeconfig: Path | None, context_options: Sequence[str], *, server_only: bool = False) -> list[Target]:
    """Every cluster the federation renders a sync root for (server cluster first) and its context."""
    every = [c.cluster for c in contributions(fed, "")]
    names = every[:1] if server_only else every
    refs = [ClusterRef(n, fed.cluster(n).project_id, fed.cluster(n).region) for n in names]
    available, where = kubeconfig_contexts(kubeconfig)
    contexts = resolve_contexts(refs, available, parse_context_options(context_options, every), where)
    return [Target(n, contexts[n], "server" if n == fed.server.cluster else "sites") for n in names]


def _live(kube: Kube, built: Sequence[Obj]) -> tuple[dict[objects.Identity, Obj | None], list[str]]:
    live: dict[objects.Identity, Obj | None] = {}
    unserved = set()
    for obj in built:
        ident = objects.identity(obj)
        api_version, kind, namespace, name = ident
        if kube.resources(api_version) is None:
            unserved.add(api_version)
        live[ident] = kube.get(api_version, kind, namespace or None, name)
    return live, sorted(unserved)


@dataclass(frozen=True)
class Rendered:
    """What the repo says one cluster should run: its built sync root and the RootSync's git source."""

    objects: list[Obj]
    rootsync_git: dict[str, Any]
    namespaces: tuple[str, ...]  # this federation's namespaces on the cluster


def rendered_for(fed: Federation, repo: Path, cluster: str, namespaces: Sequence[str]) -> Rendered:
    git: dict[str, Any] = {}
    if fed.gitops.engine == "config-sync":
        rootsync = next((o for o in kustomized(repo, bootstrap_dir(cluster), fed.gitops.engine) if o.get("kind") == "RootSync"), {})
        git = (rootsync.get("spec") or {}).get("git") or {}
    return Rendered(kustomized(repo, cluster_dir(cluster), fed.gitops.engine), git, tuple(namespaces))


def _engine_check(kube: Kube, fed: Federation, rendered: Rendered, cluster: str, head: str) -> tuple[Check, dict[str, Any]]:
    if fed.gitops.engine == "config-sync":
        rootsync = kube.get("configsync.gke.io/v1beta1", "RootSync", CONFIG_SYNC_NAMESPACE, ROOT_SYNC_NAME)
        return engine.config_sync(rootsync, cluster=cluster, head=head, expected_git=rendered.rootsync_git)
    names = (f"{project_name(cluster)}-root", project_name(cluster))
    apps = {n: kube.get("argoproj.io/v1alpha1", "Application", ARGOCD_NAMESPACE, n) for n in names}
    return engine.argocd(apps, cluster=cluster, head=head)


def check_cluster(kube: Kube, fed: Federation, rendered: Rendered, target: Target, head: str) -> tuple[list[Check], dict[str, Any]]:
    """Engine, objects, this federation's Deployments and SealedSecrets, and (server cluster) the address."""
    checks: list[Check] = []
    facts: dict[str, Any] = {}

    def add(result: tuple[Check, dict[str, Any]]) -> None:
        checks.append(result[0])
        for key, value in result[1].items():
            if isinstance(value, dict) and isinstance(facts.get(key), dict):
                facts[key].update(value)
            else:
                facts[key] = value

    add(_engine_check(kube, fed, rendered, target.cluster, head))
    live, unserved = _live(kube, rendered.objects)
    add(objects.objects_check(rendered.objects, live, engine=fed.gitops.engine, cluster=target.cluster, unserved=unserved))
    ours = [o for o in rendered.objects if (o.get("metadata") or {}).get("namespace") in rendered.namespaces]
    for obj in sorted(ours, key=objects.identity):
        ident = objects.identity(obj)
        if obj.get("kind") == "Deployment" and ident[0] == "apps/v1":
            current = live.get(ident)
            pods = kube.list("v1", "Pod", ident[2], label_selector=workloads.pod_selector(current)) if current else []
            add(workloads.deployment_check(obj, current, pods))
        elif obj.get("kind") == "SealedSecret":
            add(workloads.sealed_secret_check(obj, live.get(ident)))
    if target.role == "server":
        where = address.address_service(fed)
        add(address.address_check(fed, kube.get("v1", "Service", where.namespace, where.name)))
    return checks, facts


def check_federation(
    *,
    spec: Path,
    repo: Path,
    kubeconfig: Path | None = None,
    contexts: Sequence[str] = (),
    admin_kit: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> StatusReport:
    """Ask each cluster of the spec's federation (and, with admin_kit, its NVFlare server) how it is doing.
    InputError for a bad spec, repo, kubeconfig or bundle (before anything is asked); an unreachable cluster
    or NVFlare server is reported in the result, not raised."""
    repo = repo.resolve()
    fed = load_federation(spec)
    head = repo_head(repo)
    plan = targets(fed, kubeconfig, contexts)
    rendered = {c.cluster: rendered_for(fed, repo, c.cluster, c.namespaces) for c in contributions(fed, "")}
    dirty = uncommitted(repo, ["clusters", "tenants"])
    results = []
    with admin.open_admin_kit(admin_kit) if admin_kit is not None else contextlib.nullcontext() as kit:
        for target in plan:
            checks: list[Check] = []
            facts: dict[str, Any] = {}
            server, down = "", []
            try:
                with Kube(cluster=target.cluster, context=target.context, kubeconfig=kubeconfig, timeout=timeout) as kube:
                    server = kube.server
                    checks, facts = check_cluster(kube, fed, rendered[target.cluster], target, head)
            except (ClusterUnreachable, CredentialsRefused) as exc:
                down.append(str(exc))
            if target.role == "server":
                if dirty:
                    checks.insert(0, Check("repo", f"{len(dirty)} rendered files not committed", (Problem(
                        f"rendered files differ from HEAD ({', '.join(dirty[:3])}{' ...' if len(dirty) > 3 else ''}): the cluster can only sync commits",
                        "review, commit and push the render",
                    ),)))  # fmt: skip
                if kit is not None:
                    try:
                        check, extra = admin.sites_check([s.name for s in fed.sites], admin.connected_sites(kit, timeout), kit)
                        checks.append(check)
                        facts.update(extra)
                    except (admin.NVFlareUnreachable, admin.AdminRefused) as exc:
                        down.append(str(exc))
            results.append(ClusterStatus(target.cluster, target.context, server, tuple(checks), tuple(down), facts))
    return StatusReport(fed.name, head, tuple(results))


def server_address(*, spec: Path, kubeconfig: Path | None = None, contexts: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT) -> str:
    """The external address of the server's Service as the server cluster gives it (for bundles)."""
    fed = load_federation(spec)
    target = targets(fed, kubeconfig, contexts, server_only=True)[0]
    where = address.address_service(fed)
    with Kube(cluster=target.cluster, context=target.context, kubeconfig=kubeconfig, timeout=timeout) as kube:
        found = address.external_address(kube.get("v1", "Service", where.namespace, where.name))
    if found is None:
        raise ExternalError(
            f"cluster {target.cluster} (context {target.context}) gives no external address for Service {where} yet; "
            "wait for the load balancer (`fedgen status`), or pass --server-address IP"
        )
    return found
