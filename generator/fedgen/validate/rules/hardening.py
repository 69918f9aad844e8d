"""FG7xx: every pod template runs hardened, and exposure is limited."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from fedgen.spec import sizing
from fedgen.validate.finding import ERROR, WARNING
from fedgen.validate.k8s import PodTemplate, as_dict, as_list, pod_templates, to_int
from fedgen.validate.model import KObject, Model
from fedgen.validate.nvflare import declared_sites, find_servers, server_containers
from fedgen.validate.rule import Hit, Rule, on

DANGEROUS_CAPABILITIES = frozenset({"ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "NET_RAW", "BPF", "PERFMON"})
OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def _templates(model: Model) -> list[PodTemplate]:
    return pod_templates(model.objects())


def _regular(t: PodTemplate) -> Iterator[tuple[str, dict[str, Any]]]:
    """Init and regular containers (ephemeral debug containers are not declared in git)."""
    for ptr, c in t.containers():
        if "/ephemeralContainers/" not in ptr:
            yield ptr, c


def _ctx(container: dict[str, Any]) -> dict[str, Any]:
    return as_dict(container.get("securityContext"))


def run_as_root(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        pod = as_dict(t.spec.get("securityContext"))
        for ptr, c in _regular(t):
            sc = _ctx(c)
            non_root = sc.get("runAsNonRoot", pod.get("runAsNonRoot"))
            user = to_int(sc.get("runAsUser", pod.get("runAsUser")))
            if user == 0:
                yield on(
                    t.owner,
                    f"{ptr}/securityContext/runAsUser" if "runAsUser" in sc else t.ptr("spec", "securityContext", "runAsUser"),
                    f"container {c.get('name')!r} runs as uid 0",
                )
            elif non_root is not True:
                yield on(t.owner, f"{ptr}/securityContext", f"container {c.get('name')!r} may run as root: runAsNonRoot is not true")


def privilege_escalation(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            if _ctx(c).get("allowPrivilegeEscalation") is not False:
                yield on(t.owner, f"{ptr}/securityContext", f"container {c.get('name')!r} does not set allowPrivilegeEscalation: false")


def privileged(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            sc = _ctx(c)
            if sc.get("privileged") is True:
                yield on(t.owner, f"{ptr}/securityContext/privileged", f"container {c.get('name')!r} is privileged")
            added = sorted(str(a).upper() for a in as_list(as_dict(sc.get("capabilities")).get("add")) if str(a).upper() in DANGEROUS_CAPABILITIES)
            if added:
                yield on(t.owner, f"{ptr}/securityContext/capabilities/add", f"container {c.get('name')!r} adds capabilities {', '.join(added)}")


def host_namespaces(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if t.spec.get(key) is True:
                yield on(t.owner, t.ptr("spec", key), f"the pod shares the node's {key[4:]} namespace ({key}: true)")
        for ptr, port in t.container_ports():
            if port.get("hostPort") not in (None, 0):
                yield on(t.owner, f"{ptr}/hostPort", f"hostPort {port.get('hostPort')} binds a port of the node")


def writable_root_filesystem(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            if _ctx(c).get("readOnlyRootFilesystem") is not True:
                yield on(t.owner, f"{ptr}/securityContext", f"container {c.get('name')!r} has a writable root filesystem (readOnlyRootFilesystem is not true)")


def resources_missing(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            resources = as_dict(c.get("resources"))
            missing = [f"{kind}.{name}" for kind in ("requests", "limits") for name in ("cpu", "memory") if name not in as_dict(resources.get(kind))]
            if missing:
                yield on(t.owner, f"{ptr}/resources", f"container {c.get('name')!r} sets no {', '.join(missing)}")


def _service_account(model: Model, t: PodTemplate) -> KObject | None:
    name = t.spec.get("serviceAccountName") or "default"
    return next(
        (o for o in model.objects() if o.group == "" and o.kind == "ServiceAccount" and o.namespace == t.namespace and o.name == name),
        None,
    )


def token_automount(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        setting = t.spec.get("automountServiceAccountToken")
        if setting is False:
            continue
        sa = _service_account(model, t)
        if setting is None and sa is not None and sa.data.get("automountServiceAccountToken") is False:
            continue
        yield on(t.owner, t.ptr("spec"), "the pod gets a Kubernetes API token it does not need (automountServiceAccountToken is not false)")


def capabilities_not_dropped(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            dropped = [str(d).upper() for d in as_list(as_dict(_ctx(c).get("capabilities")).get("drop"))]
            if "ALL" not in dropped:
                yield on(t.owner, f"{ptr}/securityContext", f"container {c.get('name')!r} keeps Linux capabilities (capabilities.drop lacks ALL)")


def load_balancer_open(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        if obj.group == "" and obj.kind == "Service" and obj.spec.get("type") == "LoadBalancer":
            ranges = [str(r) for r in as_list(obj.spec.get("loadBalancerSourceRanges"))]
            ports = ", ".join(str(p.get("port")) for p in as_list(obj.spec.get("ports")) if isinstance(p, dict))
            if not ranges:
                yield on(obj, "/spec", f"LoadBalancer without loadBalancerSourceRanges: ports {ports} are open to any address")
            elif any(r in OPEN_CIDRS for r in ranges):
                yield on(obj, "/spec/loadBalancerSourceRanges", f"loadBalancerSourceRanges admits any address: ports {ports} are open")


def server_memory_below_estimate(model: Model) -> Iterator[Hit]:
    """The NVFlare server container's memory limit against the estimate for the federation (fedgen.spec.sizing):
    every declared site connected, max_jobs jobs of all of them running (docs/sizing.md)."""
    for root in model.sync_roots:
        for server in find_servers(list(root.objects)):
            sites = declared_sites(model, server)
            if sites is None:
                continue
            jobs = server.capacity.max_jobs
            need = sizing.estimate_mib(sites, jobs)
            for ptr, c in server_containers(server):
                limit = as_dict(as_dict(c.get("resources")).get("limits")).get("memory")
                have = sizing.memory_bytes(limit)
                if limit is not None and (have is None or have < need * 2**20):
                    yield on(
                        server.template.owner,
                        f"{ptr}/resources/limits/memory",
                        f"memory limit {limit} of container {c.get('name')!r} is below the {math.ceil(need)}Mi the server needs "
                        f"with {sites} sites and {jobs} jobs at once: the kernel kills it, and every running job, when it runs out",
                    )


def image_not_pinned(model: Model) -> Iterator[Hit]:
    for t in _templates(model):
        for ptr, c in _regular(t):
            image = c.get("image")
            if isinstance(image, str) and "@sha256:" not in image:
                yield on(t.owner, f"{ptr}/image", f"container {c.get('name')!r} runs {image!r} by a mutable tag: the same commit can run other code tomorrow")


RULES = (
    Rule(
        "FG701",
        "run-as-root",
        ERROR,
        "Containers run as non-root (runAsNonRoot true, never uid 0).",
        "Set securityContext.runAsNonRoot: true and a non-zero runAsUser.",
        run_as_root,
    ),
    Rule(
        "FG702",
        "privilege-escalation",
        ERROR,
        "Containers set allowPrivilegeEscalation: false.",
        "Set securityContext.allowPrivilegeEscalation: false on every container.",
        privilege_escalation,
    ),
    Rule(
        "FG703",
        "privileged-container",
        ERROR,
        "No container is privileged or adds dangerous capabilities.",
        "Remove privileged: true and capabilities.add.",
        privileged,
    ),
    Rule(
        "FG704",
        "host-namespaces",
        ERROR,
        "Pods share no node namespace (hostNetwork/hostPID/hostIPC) and bind no hostPort.",
        "Remove hostNetwork/hostPID/hostIPC and hostPort.",
        host_namespaces,
    ),
    Rule(
        "FG705",
        "writable-root-filesystem",
        ERROR,
        "Containers have a read-only root filesystem.",
        "Set readOnlyRootFilesystem: true and mount emptyDir volumes where the process writes.",
        writable_root_filesystem,
    ),
    Rule(
        "FG706",
        "resources-missing",
        ERROR,
        "Containers set cpu and memory requests and limits.",
        "Set resources.requests and resources.limits for cpu and memory.",
        resources_missing,
    ),
    Rule(
        "FG707",
        "token-automount",
        ERROR,
        "Pods do not mount a Kubernetes API token (automountServiceAccountToken false).",
        "Set automountServiceAccountToken: false on the pod spec or its ServiceAccount.",
        token_automount,
    ),
    Rule(
        "FG708",
        "capabilities-not-dropped",
        ERROR,
        "Containers drop all Linux capabilities.",
        "Set securityContext.capabilities.drop: [ALL].",
        capabilities_not_dropped,
    ),
    Rule(
        "FG709",
        "load-balancer-open",
        WARNING,
        "LoadBalancer Services limit their source ranges (empty = open to the internet).",
        "Set server.loadBalancerSourceRanges in the spec to the sites' CIDRs and re-render.",
        load_balancer_open,
    ),
    Rule(
        "FG710",
        "server-memory-below-estimate",
        WARNING,
        "The NVFlare server's memory limit covers the estimate for the federation's sites and concurrent jobs (docs/sizing.md).",
        "Drop server.resources.memory from the spec to let fedgen size it, or raise it (or lower server.maxJobs), and re-render.",
        server_memory_below_estimate,
    ),
    Rule(
        "FG711",
        "image-not-pinned",
        WARNING,
        "Containers (the NVFlare server and site-cluster clients) run an image pinned by digest.",
        "Set nvflare.image in the spec to name@sha256:<digest> (docker buildx imagetools inspect or gcloud artifacts docker images describe prints it) and re-render.",
        image_not_pinned,
    ),
)
