"""Find NVFlare servers among built objects: a pod template that mounts a ConfigMap carrying fed_server.json.

fed_server.json (NVFlare 2.x provisioning) names the server in ``servers[0].service.target`` (``host:port``,
the fl port) and ``admin_server``; ``servers[0].admin_port`` is the admin port. ``servers[0].name`` is the
project name, not the server's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fedgen.untrusted import loads_json
from fedgen.validate.k8s import PodTemplate, as_dict, as_list, pod_templates, to_int
from fedgen.validate.model import KObject, Model

FED_SERVER = "fed_server.json"
FED_CLIENT = "fed_client.json"
SERVER_CERT = "server.crt"
ROOT_CA = "rootCA.pem"
# local/: NVFlare reads resources.json when present, else resources.json.default (Workspace._fallback_path).
RESOURCES = ("resources.json", "resources.json.default")
# What NVFlare 2.9 uses when no configuration sets them (ServerDeployer; DefaultJobScheduler).
DEFAULT_MAX_CLIENTS = 100
DEFAULT_MAX_JOBS = 1


@dataclass(frozen=True)
class Capacity:
    """How many clients the server admits and jobs it runs at once, as NVFlare would read them."""

    max_clients: int
    # (ConfigMap, data key) setting max_num_clients; None: nothing does (NVFlare's default applies)
    max_clients_source: tuple[KObject, str] | None
    max_jobs: int


@dataclass(frozen=True)
class NvflareServer:
    template: PodTemplate
    config: KObject  # the ConfigMap holding fed_server.json
    error: str | None  # why fed_server.json could not be read
    name: str | None  # host of servers[0].service.target: the name clients dial and the certificate CN
    admin_server: str | None
    fl_port: int | None
    admin_port: int | None
    cert: tuple[KObject, str] | None  # (ConfigMap, PEM) of server.crt
    root_ca: tuple[KObject, str] | None
    capacity: Capacity

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({p for p in (self.fl_port, self.admin_port) if p is not None}))

    @property
    def namespace(self) -> str:
        return self.template.namespace


def mounted_configmaps(template: PodTemplate) -> list[str]:
    names: list[str] = []
    for volume in as_list(template.spec.get("volumes")):
        volume = as_dict(volume)
        name = as_dict(volume.get("configMap")).get("name")
        if isinstance(name, str):
            names.append(name)
        for source in as_list(as_dict(volume.get("projected")).get("sources")):
            name = as_dict(as_dict(source).get("configMap")).get("name")
            if isinstance(name, str):
                names.append(name)
    return names


def parse_fed_server(text: Any) -> tuple[dict[str, Any], str | None]:
    """(fields, error): fields has name, admin_server, fl_port, admin_port when readable."""
    try:
        doc = loads_json(str(text))
    except ValueError as exc:
        return {}, f"fed_server.json is not JSON ({exc})"
    servers = as_list(as_dict(doc).get("servers"))
    if not servers or not isinstance(servers[0], dict):
        return {}, "fed_server.json has no servers[0]"
    first = servers[0]
    target = as_dict(first.get("service")).get("target")
    if not isinstance(target, str) or ":" not in target:
        return {}, "fed_server.json servers[0].service.target is not host:port"
    host, _, port = target.rpartition(":")
    fields = {
        "name": host,
        "fl_port": to_int(port),
        "admin_port": to_int(first.get("admin_port")),
        "admin_server": first.get("admin_server") if isinstance(first.get("admin_server"), str) else None,
    }
    if fields["fl_port"] is None or fields["admin_port"] is None:
        return fields, "fed_server.json lacks a numeric fl port (service.target) or admin_port"
    return fields, None


def find_servers(objects: Sequence[KObject]) -> list[NvflareServer]:
    configmaps = {(o.namespace, o.name): o for o in objects if o.group == "" and o.kind == "ConfigMap"}
    out: list[NvflareServer] = []
    for template in pod_templates(objects):
        mounted = [configmaps[k] for k in ((template.namespace, n) for n in mounted_configmaps(template)) if k in configmaps]
        holder = next((c for c in mounted if FED_SERVER in as_dict(c.data.get("data"))), None)
        if holder is None:
            continue
        fields, error = parse_fed_server(as_dict(holder.data.get("data"))[FED_SERVER])
        out.append(
            NvflareServer(
                template=template,
                config=holder,
                error=error,
                name=fields.get("name"),
                admin_server=fields.get("admin_server"),
                fl_port=fields.get("fl_port"),
                admin_port=fields.get("admin_port"),
                cert=_pem(mounted, SERVER_CERT),
                root_ca=_pem(mounted, ROOT_CA),
                capacity=capacity(holder, mounted),
            )
        )
    return out


def _servers0(text: Any) -> dict[str, Any]:
    try:
        doc = loads_json(str(text))
    except ValueError:
        return {}
    servers = as_list(as_dict(doc).get("servers"))
    return as_dict(servers[0]) if servers else {}


def _max_jobs(text: Any) -> int | None:
    try:
        doc = loads_json(str(text))
    except ValueError:
        return None
    for component in as_list(as_dict(doc).get("components")):
        if as_dict(component).get("id") == "job_scheduler":
            return to_int(as_dict(as_dict(component).get("args")).get("max_jobs"))
    return None


def capacity(holder: KObject, mounted: Sequence[KObject]) -> Capacity:
    """NVFlare merges fed_server.json with the local resources file, the startup file winning a conflict
    (nvflare.fuel.utils.dict_utils.augment without override), so max_num_clients comes from fed_server.json
    first, then the resources file, then NVFlare's default."""
    resources: tuple[KObject, str] | None = None
    for name in RESOURCES:
        found = next(((cm, name) for cm in mounted if cm is not holder and name in as_dict(cm.data.get("data"))), None)
        if found is not None:
            resources = found
            break
    candidates: list[tuple[KObject, str]] = [(holder, FED_SERVER), *([resources] if resources else [])]
    for cm, key in candidates:
        value = to_int(_servers0(as_dict(cm.data.get("data"))[key]).get("max_num_clients"))
        if value is not None:
            max_clients, source = value, (cm, key)
            break
    else:
        max_clients, source = DEFAULT_MAX_CLIENTS, None
    jobs = _max_jobs(as_dict(resources[0].data.get("data"))[resources[1]]) if resources else None
    return Capacity(max_clients, source, jobs if jobs is not None else DEFAULT_MAX_JOBS)


def _pem(configmaps: Iterable[KObject], key: str) -> tuple[KObject, str] | None:
    for cm in configmaps:
        value = as_dict(cm.data.get("data")).get(key)
        if isinstance(value, str):
            return cm, value
    return None


@dataclass(frozen=True)
class NvflareClient:
    template: PodTemplate
    config: KObject  # the ConfigMap holding fed_client.json
    project: str | None  # servers[0].name
    host: str | None  # host of servers[0].service.target: the name the client dials
    port: int | None
    identity: str | None  # servers[0].identity: the CN the server certificate must carry
    root_ca: tuple[KObject, str] | None


def parse_fed_client(text: Any) -> dict[str, Any]:
    try:
        doc = loads_json(str(text))
    except ValueError:
        return {}
    servers = as_list(as_dict(doc).get("servers"))
    first = as_dict(servers[0]) if servers else {}
    target = as_dict(first.get("service")).get("target")
    host, port = (target.rpartition(":")[0], to_int(target.rpartition(":")[2])) if isinstance(target, str) and ":" in target else (None, None)
    return {"project": first.get("name"), "host": host, "port": port, "identity": first.get("identity")}


def find_clients(objects: Sequence[KObject]) -> list[NvflareClient]:
    configmaps = {(o.namespace, o.name): o for o in objects if o.group == "" and o.kind == "ConfigMap"}
    out: list[NvflareClient] = []
    for template in pod_templates(objects):
        mounted = [configmaps[k] for k in ((template.namespace, n) for n in mounted_configmaps(template)) if k in configmaps]
        holder = next((c for c in mounted if FED_CLIENT in as_dict(c.data.get("data"))), None)
        if holder is None:
            continue
        fields = parse_fed_client(as_dict(holder.data.get("data"))[FED_CLIENT])
        out.append(
            NvflareClient(template, holder, fields.get("project"), fields.get("host"), fields.get("port"), fields.get("identity"), _pem(mounted, ROOT_CA))
        )
    return out


def project_of(server: NvflareServer) -> str | None:
    try:
        doc = loads_json(str(as_dict(server.config.data.get("data")).get(FED_SERVER)))
        return str(as_list(as_dict(doc).get("servers"))[0].get("name"))
    except (ValueError, IndexError, AttributeError, TypeError):
        return None


def declared_sites(model: Model, server: NvflareServer) -> int | None:
    """How many sites the spec of the server's federation declares (None: no loadable spec for it)."""
    project = project_of(server)
    info = model.federation_spec(project) if project else None
    if info is None and server.config.source is not None:
        info = model.spec_for(server.config.source.path)
    fed = info.federation if info is not None else None
    return len(fed.sites) if fed is not None and fed.name == project else None


def server_containers(server: NvflareServer) -> list[tuple[str, dict[str, Any]]]:
    """(pointer, container) of the containers that mount the kit ConfigMap holding fed_server.json: the ones
    running NVFlare (and its job processes)."""
    kit_volumes = set()
    for volume in as_list(server.template.spec.get("volumes")):
        volume = as_dict(volume)
        sources = [as_dict(volume.get("configMap"))] + [as_dict(as_dict(s).get("configMap")) for s in as_list(as_dict(volume.get("projected")).get("sources"))]
        if any(src.get("name") == server.config.name for src in sources):
            kit_volumes.add(volume.get("name"))
    return [
        (ptr, c)
        for ptr, c in server.template.containers()
        if "/ephemeralContainers/" not in ptr and any(as_dict(m).get("name") in kit_volumes for m in as_list(c.get("volumeMounts")))
    ]
