"""Pure Kubernetes knowledge the rules share: scopes, pod templates, containers, selectors, ports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fedgen.validate.model import KObject
from fedgen.validate.yamlsource import pointer

# (group, kind) of cluster-scoped kinds: built-in (Kubernetes 1.33-1.37) and the custom resources fedgen
# knows. Everything else listed in NAMESPACED is namespaced; a kind in neither table is not judged.
CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
        ("mutations.gatekeeper.sh", "Assign"),
        ("mutations.gatekeeper.sh", "AssignMetadata"),
        ("mutations.gatekeeper.sh", "ModifySet"),
        ("mutations.gatekeeper.sh", "AssignImage"),
        ("templates.gatekeeper.sh", "ConstraintTemplate"),
        ("config.gatekeeper.sh", "Config"),
        ("constraints.gatekeeper.sh", "*"),
        ("configmanagement.gke.io", "ClusterSelector"),
        ("configmanagement.gke.io", "NamespaceSelector"),
    }
)
NAMESPACED = frozenset(
    {
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Service"),
        ("", "ServiceAccount"),
        ("", "Pod"),
        ("", "Endpoints"),
        ("", "PersistentVolumeClaim"),
        ("", "ResourceQuota"),
        ("", "LimitRange"),
        ("", "ReplicationController"),
        ("", "PodTemplate"),
        ("", "Event"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("apps", "ControllerRevision"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("networking.k8s.io", "Ingress"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("coordination.k8s.io", "Lease"),
        ("bitnami.com", "SealedSecret"),
        ("configsync.gke.io", "RootSync"),
        ("configsync.gke.io", "RepoSync"),
        ("argoproj.io", "Application"),
        ("argoproj.io", "ApplicationSet"),
        ("argoproj.io", "AppProject"),
        ("networking.istio.io", "Gateway"),
        ("networking.istio.io", "VirtualService"),
        ("networking.istio.io", "DestinationRule"),
        ("networking.istio.io", "ServiceEntry"),
        ("networking.istio.io", "Sidecar"),
        ("networking.istio.io", "WorkloadEntry"),
        ("networking.istio.io", "WorkloadGroup"),
        ("networking.istio.io", "EnvoyFilter"),
        ("security.istio.io", "AuthorizationPolicy"),
        ("security.istio.io", "PeerAuthentication"),
        ("security.istio.io", "RequestAuthentication"),
        ("telemetry.istio.io", "Telemetry"),
    }
)
WORKLOAD_TEMPLATE = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("", "ReplicationController"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("", "Pod"): (),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def scope(obj: KObject) -> str | None:
    """'Cluster', 'Namespaced' or None (unknown kind)."""
    key = (obj.group, obj.kind)
    if key in CLUSTER_SCOPED or (obj.group, "*") in CLUSTER_SCOPED:
        return "Cluster"
    if key in NAMESPACED:
        return "Namespaced"
    return None


def dig(data: Any, *path: Any) -> Any:
    for step in path:
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
            data = data[step]
        else:
            return None
    return data


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class PodTemplate:
    owner: KObject
    base: tuple[str, ...]  # path of the template inside the owner ("" parts for a bare Pod)

    @property
    def metadata(self) -> dict[str, Any]:
        return as_dict(dig(self.owner.data, *self.base, "metadata"))

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in as_dict(self.metadata.get("labels")).items()}

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in as_dict(self.metadata.get("annotations")).items()}

    @property
    def spec(self) -> dict[str, Any]:
        return as_dict(dig(self.owner.data, *self.base, "spec"))

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    def ptr(self, *tokens: object) -> str:
        return pointer(*self.base, *tokens)

    def containers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(pointer, container) for init, regular and ephemeral containers."""
        for key in CONTAINER_LISTS:
            for i, c in enumerate(as_list(self.spec.get(key))):
                if isinstance(c, dict):
                    yield self.ptr("spec", key, i), c

    def container_ports(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for cptr, c in self.containers():
            for i, port in enumerate(as_list(c.get("ports"))):
                if isinstance(port, dict):
                    yield f"{cptr}/ports/{i}", port


def pod_template(obj: KObject) -> PodTemplate | None:
    base = WORKLOAD_TEMPLATE.get((obj.group, obj.kind))
    if base is None:
        return None
    if base and not isinstance(dig(obj.data, *base), dict):
        return None
    return PodTemplate(obj, base)


def pod_templates(objects: Iterable[KObject]) -> list[PodTemplate]:
    return [t for t in (pod_template(o) for o in objects) if t is not None]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A plain label selector (Service spec.selector or matchLabels): every pair present; empty matches none."""
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def label_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions); empty selects everything."""
    sel = as_dict(selector)
    for k, v in as_dict(sel.get("matchLabels")).items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_dict(expr)
        key, op, values = str(expr.get("key")), expr.get("operator"), [str(v) for v in as_list(expr.get("values"))]
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def services(objects: Iterable[KObject]) -> list[KObject]:
    return [o for o in objects if o.group == "" and o.kind == "Service"]


def service_ports(svc: KObject) -> list[tuple[int, dict[str, Any]]]:
    return [(i, p) for i, p in enumerate(as_list(svc.spec.get("ports"))) if isinstance(p, dict)]


def selected_pods(svc: KObject, templates: Iterable[PodTemplate]) -> list[PodTemplate]:
    selector = as_dict(svc.spec.get("selector"))
    return [t for t in templates if t.namespace == svc.namespace and selector_matches(selector, t.labels)]


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def resolve_target(port: Mapping[str, Any], template: PodTemplate) -> int | None:
    """The container port number a Service port's targetPort reaches in this pod, if declared."""
    target = port.get("targetPort", port.get("port"))
    number = to_int(target)
    for _, cport in template.container_ports():
        if number is not None and to_int(cport.get("containerPort")) == number:
            return number
        if number is None and isinstance(target, str) and cport.get("name") == target:
            return to_int(cport.get("containerPort"))
    return None


def service_fqdn(svc: KObject) -> str:
    return f"{svc.name}.{svc.namespace}.svc.cluster.local"


def resolve_host(host: str, from_namespace: str, svcs: Iterable[KObject]) -> KObject | None:
    """The Service an Istio host names (FQDN, name.namespace, or a short name in the caller's namespace)."""
    for svc in svcs:
        if host in (service_fqdn(svc), f"{svc.name}.{svc.namespace}", f"{svc.name}.{svc.namespace}.svc"):
            return svc
        if host == svc.name and svc.namespace == from_namespace:
            return svc
    return None


def ports_list(value: Any) -> set[int]:
    """'8002,8003' or '8002, 8003' -> {8002, 8003}; '*' and junk are ignored."""
    out = set()
    for part in str(value or "").split(","):
        number = to_int(part.strip())
        if number is not None:
            out.add(number)
    return out
