"""FG6xx: objects that must agree with each other: selectors and pods, ports, the Services NVFlare is reached
through, routes and the Services they name, referenced ConfigMaps and Secrets, the server's client limit. The
kits' certificates and configuration are checked in kit_consistency.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import (
    PodTemplate,
    as_dict,
    as_list,
    label_selector_matches,
    pod_template,
    pod_templates,
    resolve_host,
    resolve_target,
    selected_pods,
    selector_matches,
    service_ports,
    services,
    to_int,
)
from fedgen.validate.model import KObject, Model
from fedgen.validate.nvflare import (
    FED_SERVER,
    NvflareServer,
    declared_sites,
    find_servers,
)
from fedgen.validate.rule import Hit, Rule, on
from fedgen.validate.yamlsource import pointer

if TYPE_CHECKING:
    pass


def _roots(model: Model) -> Iterator[list[KObject]]:
    for root in model.sync_roots:
        yield list(root.objects)


def servers(model: Model) -> Iterator[tuple[list[KObject], NvflareServer]]:
    """(the objects of its sync root, the server) for every NVFlare server the sync roots declare."""
    for objects in _roots(model):
        for server in find_servers(objects):
            yield objects, server


def service_selector_no_pods(model: Model) -> Iterator[Hit]:
    for objects in _roots(model):
        templates = pod_templates(objects)
        namespaces = {t.namespace for t in templates}
        for svc in services(objects):
            selector = as_dict(svc.spec.get("selector"))
            if selector and svc.namespace in namespaces and not selected_pods(svc, templates):
                yield on(svc, "/spec/selector", f"selector {dict(sorted(selector.items()))} matches no pod template in namespace {svc.namespace}")


def workload_selector_mismatch(model: Model) -> Iterator[Hit]:
    for obj in model.objects():
        template = pod_template(obj)
        if template is None or not template.base or obj.kind in ("Job", "CronJob"):
            continue
        selector = obj.spec.get("selector")
        if selector is not None and not label_selector_matches(selector, template.labels):
            yield on(obj, "/spec/selector", f"spec.selector does not match the pod template's labels {template.labels}")


def service_target_port(model: Model) -> Iterator[Hit]:
    for objects in _roots(model):
        templates = pod_templates(objects)
        for svc in services(objects):
            pods = selected_pods(svc, templates)
            if not pods:
                continue
            for i, port in service_ports(svc):
                if not any(resolve_target(port, t) is not None for t in pods):
                    target = port.get("targetPort", port.get("port"))
                    key = "targetPort" if "targetPort" in port else "port"
                    yield on(svc, f"/spec/ports/{i}/{key}", f"targetPort {target!r} matches no containerPort (by name or number) of the selected pods")


def _named_service(objects: list[KObject], server: NvflareServer, name: str | None) -> KObject | None:
    for svc in services(objects):
        if svc.namespace == server.namespace and svc.name == name and selector_matches(as_dict(svc.spec.get("selector")), server.template.labels):
            return svc
    return None


def nvflare_service_name(model: Model) -> Iterator[Hit]:
    for objects, server in servers(model):
        if server.error:
            continue
        for field, name in (("service.target", server.name), ("admin_server", server.admin_server)):
            if name is None or (field == "admin_server" and name == server.name):
                continue
            if _named_service(objects, server, name) is None:
                yield on(
                    server.config,
                    pointer("data", FED_SERVER),
                    f"fed_server.json {field} dials {name!r}, but no Service named {name!r} in {server.namespace} selects {server.template.owner.ref}",
                )


def nvflare_service_ports(model: Model) -> Iterator[Hit]:
    for objects, server in servers(model):
        svc = _named_service(objects, server, server.name)
        if svc is None or server.error:
            continue
        for label, number in (("fl port (service.target)", server.fl_port), ("admin_port", server.admin_port)):
            match = next((p for _, p in service_ports(svc) if to_int(p.get("port")) == number), None)
            if match is None:
                yield on(svc, "/spec/ports", f"fed_server.json {label} is {number}, but Service {svc.name} has no port {number}")
            elif resolve_target(match, server.template) != number:
                yield on(svc, "/spec/ports", f"Service port {number} does not reach container port {number}, where NVFlare listens ({label})")


def nvflare_container_ports(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        if server.error:
            continue
        declared = {to_int(p.get("containerPort")) for _, p in server.template.container_ports()}
        for label, number in (("fl port (service.target)", server.fl_port), ("admin_port", server.admin_port)):
            if number not in declared:
                yield on(
                    server.template.owner,
                    server.template.ptr("spec", "containers"),
                    f"NVFlare listens on {number} ({label} in fed_server.json), but no container declares containerPort {number}",
                )


def _destinations(vs: KObject) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("tcp", "tls", "http"):
        for j, route in enumerate(as_list(vs.spec.get(kind))):
            for k, dest in enumerate(as_list(as_dict(route).get("route"))):
                destination = as_dict(as_dict(dest).get("destination"))
                if destination:
                    yield f"/spec/{kind}/{j}/route/{k}/destination", destination


def route_destination(model: Model) -> Iterator[Hit]:
    for objects in _roots(model):
        svcs = services(objects)
        namespaces = {o.namespace for o in objects if o.namespace} | {o.name for o in objects if o.kind == "Namespace" and o.group == ""}
        for vs in (o for o in objects if o.group == "networking.istio.io" and o.kind == "VirtualService"):
            for ptr, destination in _destinations(vs):
                host = str(destination.get("host", ""))
                target = resolve_host(host, vs.namespace, svcs)
                if target is None:
                    parts = host.split(".")
                    local_ns = parts[1] if host.endswith(".svc.cluster.local") and len(parts) == 5 else vs.namespace if len(parts) == 1 else None
                    if local_ns in namespaces:
                        yield on(vs, f"{ptr}/host", f"destination host {host!r} names no Service in the repo")
                    continue
                number = to_int(as_dict(destination.get("port")).get("number"))
                if number is not None and number not in {to_int(p.get("port")) for _, p in service_ports(target)}:
                    yield on(vs, f"{ptr}/port/number", f"destination port {number} is not a port of Service {target.namespace}/{target.name}")


def _providers(objects: list[KObject], namespace: str) -> dict[tuple[str, str], set[str] | None]:
    """(kind, name) -> keys it provides (None: unknown keys) for ConfigMaps, Secrets and SealedSecrets."""
    out: dict[tuple[str, str], set[str] | None] = {}
    for o in objects:
        if o.namespace != namespace:
            continue
        if o.group == "" and o.kind == "ConfigMap":
            out[("ConfigMap", o.name)] = set(as_dict(o.data.get("data"))) | set(as_dict(o.data.get("binaryData")))
        elif o.group == "" and o.kind == "Secret":
            out[("Secret", o.name)] = set(as_dict(o.data.get("data"))) | set(as_dict(o.data.get("stringData")))
        elif o.group == "bitnami.com" and o.kind == "SealedSecret":
            # The controller names the Secret after the SealedSecret (FG407 checks the template agrees).
            template = as_dict(o.spec.get("template"))
            out[("Secret", o.name)] = set(as_dict(o.spec.get("encryptedData"))) | set(as_dict(template.get("data")))
        elif o.group == "" and o.kind == "ServiceAccount":
            out[("ServiceAccount", o.name)] = None
    return out


def _references(t: PodTemplate) -> Iterator[tuple[str, str, str, list[str], bool]]:
    """(pointer, kind, name, keys, optional) of every ConfigMap/Secret/ServiceAccount the pod needs."""
    for i, volume in enumerate(as_list(t.spec.get("volumes"))):
        volume = as_dict(volume)
        vptr = t.ptr("spec", "volumes", i)
        for key, kind, name_key in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")):
            ref = as_dict(volume.get(key))
            if ref:
                items = [str(as_dict(it).get("key")) for it in as_list(ref.get("items"))]
                yield f"{vptr}/{key}", kind, str(ref.get(name_key, "")), items, bool(ref.get("optional"))
        for j, source in enumerate(as_list(as_dict(volume.get("projected")).get("sources"))):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                ref = as_dict(as_dict(source).get(key))
                if ref:
                    items = [str(as_dict(it).get("key")) for it in as_list(ref.get("items"))]
                    yield f"{vptr}/projected/sources/{j}/{key}", kind, str(ref.get("name", "")), items, bool(ref.get("optional"))
    for cptr, container in t.containers():
        for i, src in enumerate(as_list(container.get("envFrom"))):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                ref = as_dict(as_dict(src).get(key))
                if ref:
                    yield f"{cptr}/envFrom/{i}/{key}", kind, str(ref.get("name", "")), [], bool(ref.get("optional"))
        for i, env in enumerate(as_list(container.get("env"))):
            value_from = as_dict(as_dict(env).get("valueFrom"))
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = as_dict(value_from.get(key))
                if ref:
                    yield f"{cptr}/env/{i}/valueFrom/{key}", kind, str(ref.get("name", "")), [str(ref.get("key"))], bool(ref.get("optional"))
    sa = t.spec.get("serviceAccountName")
    if isinstance(sa, str) and sa != "default":
        yield t.ptr("spec", "serviceAccountName"), "ServiceAccount", sa, [], False


def referenced_object_missing(model: Model) -> Iterator[Hit]:
    for root in model.sync_roots:
        objects = list(root.objects)
        platform = model.platform_objects(root.cluster)  # e.g. the tenant's fl-ksa on the reference architecture
        for t in pod_templates(objects):
            providers = _providers(objects, t.namespace)
            for ptr, kind, name, keys, optional in _references(t):
                if optional or ("", kind, t.namespace, name) in platform:
                    continue
                if (kind, name) not in providers:
                    yield on(t.owner, ptr, f"needs {kind} {name!r} in {t.namespace}, which the sync root does not provide")
                    continue
                provided = providers[(kind, name)]
                missing = [k for k in keys if provided is not None and k not in provided]
                if missing:
                    yield on(t.owner, ptr, f"needs key(s) {', '.join(missing)} of {kind} {name!r}, which it does not have")


def max_clients_too_low(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        declared = declared_sites(model, server)
        cap = server.capacity
        if declared is None or cap.max_clients >= declared:
            continue
        where = f"max_num_clients in {cap.max_clients_source[1]}" if cap.max_clients_source else "NVFlare's default max_num_clients"
        holder, key = cap.max_clients_source or (server.config, FED_SERVER)
        yield on(
            holder,
            pointer("data", key),
            f"the server admits {cap.max_clients} clients ({where}) but the federation declares {declared} sites: "
            f"NVFlare refuses the other {declared - cap.max_clients} ('Maximum number of clients reached')",
        )


RULES = (
    Rule(
        "FG601",
        "service-selector-no-pods",
        ERROR,
        "A Service's selector matches a pod template of its namespace (when the repo has workloads there).",
        "Make spec.selector equal labels of the pod template.",
        service_selector_no_pods,
    ),
    Rule(
        "FG602",
        "workload-selector-mismatch",
        ERROR,
        "A workload's spec.selector matches its own pod template.",
        "Make spec.selector.matchLabels a subset of spec.template.metadata.labels.",
        workload_selector_mismatch,
    ),
    Rule(
        "FG603",
        "service-target-port",
        ERROR,
        "Every Service port's targetPort names or numbers a containerPort of the selected pods.",
        "Point targetPort at a declared container port name (tcp-flport) or number.",
        service_target_port,
    ),
    Rule(
        "FG604",
        "nvflare-service-name",
        ERROR,
        "The Service that selects the NVFlare server is named as fed_server.json says clients dial it.",
        "Name the Service exactly like the server participant (server.name in the spec) and re-render.",
        nvflare_service_name,
    ),
    Rule(
        "FG605",
        "nvflare-service-ports",
        ERROR,
        "The server Service carries fed_server.json's fl and admin ports and reaches the same container ports.",
        "Set the Service ports to server.ports in the spec and re-render.",
        nvflare_service_ports,
    ),
    Rule(
        "FG606",
        "nvflare-container-ports",
        ERROR,
        "The server container declares the fl and admin ports fed_server.json binds.",
        "Declare containerPort entries for both NVFlare ports.",
        nvflare_container_ports,
    ),
    Rule(
        "FG607",
        "route-destination",
        ERROR,
        "VirtualService destinations name a Service of the repo and one of its ports.",
        "Fix the destination host or port.number to the server Service and its port.",
        route_destination,
    ),
    Rule(
        "FG611",
        "referenced-object-missing",
        ERROR,
        "ConfigMaps, Secrets (or SealedSecrets) and ServiceAccounts a pod needs are in its sync root (or the reference architecture provides them).",
        "Add the missing object, or fix the reference.",
        referenced_object_missing,
    ),
    Rule(
        "FG616",
        "max-clients-too-low",
        ERROR,
        "The server's max_num_clients admits every site the federation declares.",
        "Re-render (fedgen sizes max_num_clients from the declared sites), or raise server.maxClients in the spec.",
        max_clients_too_low,
    ),
)
