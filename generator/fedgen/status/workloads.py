"""Is each rendered Deployment rolled out with the rendered pod template (the kit digest) and available, and
is each SealedSecret unsealed? Pure functions of the built and live objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedgen.status.model import Check, Problem

Obj = Mapping[str, Any]
KIT_DIGEST = "fedgen.dev/kit-digest"
# Container states that keep a pod from ever becoming ready without a change.
STUCK = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "CreateContainerError", "InvalidImageName"})


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _template(obj: Obj) -> Obj:
    return (obj.get("spec") or {}).get("template") or {}


def _images(template: Obj) -> list[str]:
    return [str(c.get("image")) for c in (template.get("spec") or {}).get("containers") or [] if isinstance(c, Mapping)]


def _pod_facts(pods: Sequence[Obj]) -> tuple[int, list[str]]:
    """(restarts of every container, stuck or last-failure notes)."""
    restarts, notes = 0, []
    for pod in pods:
        statuses = [*((pod.get("status") or {}).get("initContainerStatuses") or []), *((pod.get("status") or {}).get("containerStatuses") or [])]
        for cs in statuses:
            if not isinstance(cs, Mapping):
                continue
            restarts += int(cs.get("restartCount") or 0)
            waiting = (cs.get("state") or {}).get("waiting") or {}
            terminated = (cs.get("lastState") or {}).get("terminated") or {}
            who = f"{(pod.get('metadata') or {}).get('name')}/{cs.get('name')}"
            if waiting.get("reason") in STUCK:
                notes.append(f"{who} is {waiting['reason']}: {' '.join(str(waiting.get('message') or '').split())[:200]}".rstrip(": "))
            elif terminated:
                notes.append(f"{who} last exited {terminated.get('exitCode')} ({terminated.get('reason') or 'no reason'})")
    return restarts, sorted(notes)


def deployment_check(built: Obj, live: Obj | None, pods: Sequence[Obj]) -> tuple[Check, dict[str, Any]]:
    name = _name(built)
    check = f"deployment {name}"
    rendered = _template(built)
    rendered_annotations = (rendered.get("metadata") or {}).get("annotations") or {}
    digest = rendered_annotations.get(KIT_DIGEST)
    if live is None:
        return Check(check, "not on the cluster", (Problem(f"Deployment {name} is not on the cluster", "see the objects and engine checks"),)), {}
    spec, status = live.get("spec") or {}, live.get("status") or {}
    running = _template(live)
    running_annotations = (running.get("metadata") or {}).get("annotations") or {}
    wanted = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    available, updated = int(status.get("availableReplicas") or 0), int(status.get("updatedReplicas") or 0)
    restarts, notes = _pod_facts(pods)
    facts = {"deployments": {name: {"kitDigest": running_annotations.get(KIT_DIGEST), "renderedKitDigest": digest,
                                    "replicas": wanted, "available": available, "updated": updated, "restarts": restarts}}}  # fmt: skip
    problems = []
    stale = sorted(k for k, v in rendered_annotations.items() if running_annotations.get(k) != v)
    if KIT_DIGEST in stale:
        problems.append(Problem(
            f"Deployment {name} runs kit {running_annotations.get(KIT_DIGEST) or 'without a digest'}, the repo renders kit {digest}",
            "the engine has not applied the current render: see the engine check (commit and push the render)",
        ))  # fmt: skip
    elif stale or _images(running) != _images(rendered):
        problems.append(Problem(f"Deployment {name} on the cluster differs from the rendered pod template ({', '.join(stale) or 'image'})",
                                "see the engine and objects checks: the current render is not applied"))  # fmt: skip
    generation, observed = (live.get("metadata") or {}).get("generation"), status.get("observedGeneration")
    progressing = next((c for c in status.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == "Progressing"), {})
    failing = "; ".join(notes)
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        problems.append(Problem(f"Deployment {name} exceeded its progress deadline: {progressing.get('message')}" + (f"; {failing}" if failing else ""),
                                f"look at `kubectl -n {name.split('/')[0]} describe deployment {name.split('/')[1]}` and the pod's logs"))  # fmt: skip
    elif isinstance(generation, int) and (not isinstance(observed, int) or observed < generation or updated < wanted):
        problems.append(Problem(f"Deployment {name} is rolling out: {updated} of {wanted} pods run the current template",
                                "wait for the rollout (`kubectl rollout status`), then check again"))  # fmt: skip
    if available < wanted:
        problems.append(Problem(
            f"Deployment {name} is unavailable: {available}/{wanted} available, {restarts} restarts" + (f"; {failing}" if failing else ""),
            f"look at `kubectl -n {name.split('/')[0]} describe pod -l {pod_selector(live)}` and `kubectl logs --previous`",
        ))  # fmt: skip
    detail = (
        f"{available}/{wanted} available"
        + (f", kit {running_annotations.get(KIT_DIGEST)}" if running_annotations.get(KIT_DIGEST) else "")
        + f", {restarts} restarts"
    )
    return Check(check, detail, tuple(problems)), facts


def pod_selector(deployment: Obj) -> str:
    """The label selector of a Deployment's pods (matchLabels only: what fedgen renders)."""
    labels = (((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def sealed_secret_check(built: Obj, live: Obj | None) -> tuple[Check, dict[str, Any]]:
    name = _name(built)
    check = f"sealedsecret {name}"
    if live is None:
        return Check(check, "not on the cluster", (Problem(f"SealedSecret {name} is not on the cluster", "see the objects and engine checks"),)), {}
    status = live.get("status") or {}
    synced = next((c for c in status.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == "Synced"), None)
    generation, observed = (live.get("metadata") or {}).get("generation"), status.get("observedGeneration")
    facts = {"sealedSecrets": {name: {"unsealed": bool(synced and synced.get("status") == "True")}}}
    controller = "check that the Sealed Secrets controller runs (`kubectl -n kube-system get pods -l name=sealed-secrets-controller`)"
    if synced is None:
        return Check(check, "not unsealed yet", (Problem(f"SealedSecret {name} has not been unsealed (no Synced condition)", controller),)), facts
    if synced.get("status") != "True":
        message = " ".join(str(synced.get("message") or synced.get("reason") or "").split())[:300]
        return Check(check, "not unsealed", (Problem(
            f"SealedSecret {name} cannot be unsealed: {message}",
            "seal for this cluster's controller: `kubeseal --fetch-cert` into the spec's sealing.certificate, then fedgen render and commit",
        ),)), facts  # fmt: skip
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return Check(
            check, "unsealed an older version", (Problem(f"SealedSecret {name}: the controller has not unsealed the current version yet", controller),)
        ), facts
    return Check(check, "unsealed"), facts
