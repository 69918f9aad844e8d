"""Did the GitOps engine take the repository's HEAD without errors? Pure functions of the live objects.

Config Sync: the RootSync `fedgen` reports the commit it fetched (status.source), rendered (status.rendering)
and applied (status.sync), each with its errors (KNVxxxx codes), plus Stalled/Reconciling conditions.
Argo CD: each Application reports status.sync (status, revision), status.health, status.conditions and the
last operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedgen.status.model import Check, Problem

Obj = Mapping[str, Any]


def short(commit: str | None) -> str:
    return (commit or "")[:12] or "nothing"


def _errors(section: Any) -> list[str]:
    if not isinstance(section, Mapping):
        return []
    out = []
    for e in section.get("errors") or []:
        if isinstance(e, Mapping):
            message = " ".join(str(e.get("errorMessage") or "").split())[:400]
            code = str(e.get("code") or "")
            out.append(f"KNV{code}: {message}" if code and f"KNV{code}" not in message else message)
    return out


def config_sync(rootsync: Obj | None, *, cluster: str, head: str, expected_git: Mapping[str, Any]) -> tuple[Check, dict[str, Any]]:
    """The RootSync check and its facts (the commits it reports)."""
    name = "engine"
    if rootsync is None:
        return Check(name, "RootSync config-management-system/fedgen not found", (
            Problem("Config Sync has no RootSync fedgen on this cluster, so nothing of the repo is applied",
                    f"run `fedgen bootstrap {cluster}` (Config Sync must be installed on the cluster)"),
        )), {"engine": {"kind": "RootSync", "present": False}}  # fmt: skip
    spec = rootsync.get("spec") or {}
    status = rootsync.get("status") or {}
    git = spec.get("git") or {}
    source, rendering, sync = status.get("source") or {}, status.get("rendering") or {}, status.get("sync") or {}
    synced = sync.get("commit") or status.get("lastSyncedCommit")
    facts = {"engine": {"kind": "RootSync", "present": True, "sourceCommit": source.get("commit"), "syncedCommit": synced, "head": head}}
    problems: list[Problem] = []
    differs = sorted(k for k in ("repo", "revision", "dir") if k in expected_git and git.get(k) != expected_git[k])
    if differs:
        seen = ", ".join(f"{k}={git.get(k)!r}" for k in differs)
        problems.append(
            Problem(
                f"RootSync fedgen points elsewhere than the repo renders ({seen})", f"run `fedgen bootstrap {cluster}` to apply clusters/{cluster}/bootstrap"
            )
        )
    for stage, section in (("fetching", source), ("rendering", rendering), ("syncing", sync)):
        for error in _errors(section):
            problems.append(
                Problem(f"Config Sync failed {stage}: {error}", "fix the cause in the repo (or the cluster) and commit; `nomos status` shows every error")
            )
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Stalled" and condition.get("status") == "True":
            message = " ".join(str(condition.get("message") or condition.get("reason") or "").split())[:300]
            problems.append(
                Problem(
                    f"the RootSync reconciler is stalled: {message}",
                    "check the reconciler in config-management-system (`kubectl -n config-management-system get pods`)",
                )
            )
    generation, observed = rootsync.get("metadata", {}).get("generation"), status.get("observedGeneration")
    if not status:
        problems.append(
            Problem(
                "the RootSync has no status: Config Sync has not reconciled it", "check that Config Sync runs (`kubectl -n config-management-system get pods`)"
            )
        )
    elif synced != head and not any(p.message.startswith("Config Sync failed") for p in problems):
        if source.get("commit") == head:
            where = "fetched HEAD but has not applied it yet"
            fix = "wait for the sync to finish and check again"
        else:
            where = f"has fetched {short(source.get('commit'))}"
            fix = f"push HEAD to {git.get('revision') or 'the synced revision'} of {git.get('repo') or 'the repository'} (or wait for Config Sync to fetch it)"
        problems.append(Problem(f"Config Sync applied {short(synced)}, the repo's HEAD is {short(head)}; it {where}", fix))
    elif isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        problems.append(Problem("Config Sync has not reconciled the RootSync's latest change yet", "wait and check again"))
    detail = f"RootSync fedgen synced {short(synced)}" + (" (HEAD)" if synced == head else f", HEAD {short(head)}")
    return Check(name, detail, tuple(problems)), facts


def argocd(applications: Mapping[str, Obj | None], *, cluster: str, head: str) -> tuple[Check, dict[str, Any]]:
    """The Applications (app of apps and the sync root's): synced to HEAD and healthy."""
    name = "engine"
    problems: list[Problem] = []
    facts: dict[str, Any] = {}
    seen = []
    for app_name, app in sorted(applications.items()):
        if app is None:
            problems.append(
                Problem(f"Argo CD has no Application {app_name}", f"run `fedgen bootstrap {cluster}` (Argo CD must be installed in namespace argocd)")
            )
            facts[app_name] = {"present": False}
            continue
        status = app.get("status") or {}
        sync, health = status.get("sync") or {}, status.get("health") or {}
        revision, sync_status, health_status = sync.get("revision"), sync.get("status"), health.get("status")
        facts[app_name] = {"present": True, "sync": sync_status, "revision": revision, "health": health_status}
        seen.append(f"{app_name} {sync_status or 'unknown'}/{health_status or 'unknown'} at {short(revision)}")
        for condition in status.get("conditions") or []:
            if isinstance(condition, Mapping) and str(condition.get("type", "")).endswith("Error"):
                message = " ".join(str(condition.get("message") or "").split())[:400]
                problems.append(
                    Problem(
                        f"Application {app_name}: {condition.get('type')}: {message}", "fix the cause in the repo and commit; `argocd app get` shows details"
                    )
                )
        operation = status.get("operationState") or {}
        if operation.get("phase") in ("Failed", "Error"):
            message = " ".join(str(operation.get("message") or "").split())[:400]
            problems.append(
                Problem(
                    f"Application {app_name}: the last sync {str(operation['phase']).lower()}: {message}", "fix the cause and sync again (`argocd app sync`)"
                )
            )
        if not status:
            problems.append(
                Problem(f"Application {app_name} has no status: Argo CD has not reconciled it", "check that the Argo CD application controller runs")
            )
            continue
        if sync_status != "Synced":
            problems.append(
                Problem(
                    f"Application {app_name} is {sync_status or 'not synced'}", "wait for the automated sync, or look at `argocd app diff` for what differs"
                )
            )
        if revision != head:
            problems.append(
                Problem(
                    f"Application {app_name} is at {short(revision)}, the repo's HEAD is {short(head)}",
                    "push HEAD to the synced revision (or wait for Argo CD to poll the repository)",
                )
            )
        if health_status != "Healthy":
            problems.append(Problem(f"Application {app_name} is {health_status or 'of unknown health'}: {' '.join(str(health.get('message') or '').split())[:200]}".rstrip(": "),
                                    "see which resource is not healthy with `argocd app get`"))  # fmt: skip
    return Check(name, "; ".join(seen) or "no Application found", tuple(problems)), {"engine": {"kind": "Application", "applications": facts, "head": head}}
