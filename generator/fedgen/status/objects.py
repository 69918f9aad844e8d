"""Is every object of the built sync root on the cluster, and applied by the GitOps engine alone?

"Another manager" is read from what the API server records and the engines write:
- metadata.managedFields of the object itself (status subresources are the controllers' business):
  an Apply by anyone but the engine's field manager (another GitOps tool, `kubectl apply --server-side`),
  or an Update by kubectl (`kubectl edit`, `patch`, `label`, client-side `apply`...): a hand edit;
- Config Sync's `configsync.gke.io/manager` annotation naming another RootSync or a RepoSync (two syncs
  declaring one object: KNV1060), Argo CD's tracking annotation naming another Application.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedgen.spec.model import ENGINE_NAMES
from fedgen.status.model import Check, Problem

Obj = Mapping[str, Any]
Identity = tuple[str, str, str, str]  # apiVersion, kind, namespace, name

# The field manager each engine applies with (server-side apply).
ENGINE_MANAGERS = {"config-sync": "configsync.gke.io", "argocd": "argocd-controller"}
CONFIG_SYNC_MANAGER_ANNOTATION = "configsync.gke.io/manager"
ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
SHOWN = 5  # objects named per problem; the JSON has them all


def identity(obj: Obj) -> Identity:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def label(ident: Identity) -> str:
    _, kind, ns, name = ident
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def _names(idents: Sequence[Identity]) -> str:
    shown = ", ".join(label(i) for i in idents[:SHOWN])
    return shown + (f" and {len(idents) - SHOWN} more" if len(idents) > SHOWN else "")


def expected_owner(engine: str, cluster: str) -> str:
    """Config Sync's manager annotation value, or the Argo CD Application name, for fedgen's sync root."""
    return ":root_fedgen" if engine == "config-sync" else f"fedgen-{cluster}"


def _owner_conflict(live: Obj, engine: str, cluster: str) -> str | None:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if engine == "config-sync":
        manager = annotations.get(CONFIG_SYNC_MANAGER_ANNOTATION)
        if manager and manager != expected_owner(engine, cluster):
            scope, _, sync = str(manager).partition("_")
            if scope == ":root":
                return f"RootSync {sync or 'root-sync'}"
            return f"RepoSync {scope}/{sync or 'repo-sync'}"
    else:
        tracking = annotations.get(ARGOCD_TRACKING_ANNOTATION)
        app = str(tracking).split(":", 1)[0] if tracking else None
        if app and app != expected_owner(engine, cluster):
            return f"Argo CD Application {app}"
    return None


def other_managers(live: Obj, engine: str, cluster: str) -> list[str]:
    """Who else writes this object (see the module's docstring); empty when only the engine does."""
    mine = ENGINE_MANAGERS[engine]
    out = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        manager, operation = str(entry.get("manager") or "?"), entry.get("operation")
        if (operation == "Apply" and manager != mine) or (operation == "Update" and manager.startswith("kubectl")):
            out.append(f"{manager} ({operation})")
    owner = _owner_conflict(live, engine, cluster)
    if owner:
        out.append(owner)
    return sorted(set(out))


def applied_by_engine(live: Obj, engine: str) -> bool:
    mine = ENGINE_MANAGERS[engine]
    return any(isinstance(e, Mapping) and e.get("manager") == mine for e in (live.get("metadata") or {}).get("managedFields") or [])


def objects_check(
    built: Sequence[Obj], live: Mapping[Identity, Obj | None], *, engine: str, cluster: str, unserved: Sequence[str]
) -> tuple[Check, dict[str, Any]]:
    """built: the sync root's objects; live: identity -> the cluster's object (None when absent);
    unserved: apiVersions the cluster does not serve (their CRDs are missing)."""
    idents = sorted(identity(o) for o in built)
    missing = [i for i in idents if live.get(i) is None]
    foreign = {i: other_managers(o, engine, cluster) for i in idents if (o := live.get(i)) is not None}
    foreign = {i: m for i, m in foreign.items() if m}
    unapplied = [i for i in idents if (o := live.get(i)) is not None and i not in foreign and not applied_by_engine(o, engine)]
    engine_name = ENGINE_NAMES[engine]
    problems = []
    if unserved:
        problems.append(Problem(
            f"the cluster does not serve {', '.join(sorted(unserved))}: their custom resource definitions are missing",
            "install what provides them (Cloud Service Mesh / Istio, Sealed Secrets, Policy Controller, the GitOps engine) before syncing",
        ))  # fmt: skip
    if missing:
        problems.append(Problem(
            f"{len(missing)} of {len(idents)} rendered objects are not on the cluster: {_names(missing)}",
            f"wait for {engine_name} to apply HEAD; if it has (see the engine check), look for the objects' apply errors in its status",
        ))  # fmt: skip
    for ident, managers in sorted(foreign.items()):
        problems.append(Problem(
            f"{label(ident)} is also managed by {', '.join(managers)}",
            f"stop the other manager (undo the hand edit, remove the object from the other sync source); {engine_name} then re-applies the rendered version",
        ))  # fmt: skip
    if unapplied:
        problems.append(Problem(
            f"{len(unapplied)} objects exist but were not applied by {engine_name} ({ENGINE_MANAGERS[engine]}): {_names(unapplied)}",
            f"let {engine_name} adopt them (it does on its next sync) or delete the copies made by hand",
        ))  # fmt: skip
    present = len(idents) - len(missing)
    detail = f"{present}/{len(idents)} present" + ("" if foreign or unapplied else f", applied by {ENGINE_MANAGERS[engine]}")
    facts = {
        "objects": {
            "rendered": len(idents),
            "missing": [label(i) for i in missing],
            "otherManagers": {label(i): m for i, m in sorted(foreign.items())},
            "notAppliedByEngine": [label(i) for i in unapplied],
            "unservedApiVersions": sorted(unserved),
        }
    }
    return Check("objects", detail, tuple(problems)), facts
