"""Files several federations of one repository contribute to: each cluster's sync root kustomization,
its bootstrap objects, and the Terraform variables.

Each render records its contributions in its ledger (fedgen.ledger), so the shared files can be recomputed
from every federation's record, by any render or by `fedgen remove`, without the other specs or their
state. Two federations that would collide (one tenant, one server name, one gateway port on a cluster;
different GitOps settings or platform kinds for one cluster; different platform variables) are refused.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from fedgen.errors import InputError
from fedgen.ledger import Contribution, Ledger, ledger_path
from fedgen.ledger.guard import path_problem
from fedgen.render import argocd
from fedgen.render.gitops import folder_files, kustomization, root_sync
from fedgen.render.layout import GATEWAY_NAMESPACE, bootstrap_dir, cluster_dir, ingress_dir, tenant_overlay_dir
from fedgen.render.serialize import dump_json, dump_yaml
from fedgen.render.site import site_dir
from fedgen.render.tfvars import LIST_VARIABLES, MAP_VARIABLES, Variables, server_cluster_tfvars, site_cluster_tfvars
from fedgen.spec.model import Federation


def tfvars_path(cluster: str, group: str) -> str:
    """Each cluster is its own platform (project, region, tenants): one folder per cluster, one values file
    per variable group, named after upstream's shared values file of that group."""
    return f"terraform/{cluster}/{group}.auto.tfvars.json"


def _files(cluster: str, variables: Variables) -> dict[str, dict[str, Any]]:
    return {tfvars_path(cluster, group): values for group, values in variables.items()}


def contributions(fed: Federation, spec_name: str) -> list[Contribution]:
    """The server cluster's contribution, then one per site cluster."""
    cdir = cluster_dir(fed.server.cluster)
    gateway = fed.server.exposure == "gateway"
    resources = [posixpath.relpath(tenant_overlay_dir(fed), cdir)]
    if gateway:
        resources.append(posixpath.relpath(ingress_dir(fed), cdir))
    gitops = {k: v for k, v in asdict(fed.gitops).items() if v is not None}
    out = [
        Contribution(
            federation=fed.name,
            spec=spec_name,
            cluster=fed.server.cluster,
            tenant=fed.server.tenant,
            server=fed.server.name,
            resources=tuple(sorted(resources)),
            namespaces=tuple(sorted({fed.server.tenant} | ({GATEWAY_NAMESPACE} if gateway else set()))),
            gateway_ports=(fed.server.fl_port, fed.server.admin_port) if gateway else (),
            gitops=gitops,
            platform=fed.server_cluster.platform,
            tfvars=_files(fed.server.cluster, server_cluster_tfvars(fed)),
        )
    ]
    for cluster in sorted({s.cluster for s in fed.cluster_sites if s.cluster}):
        sites = [s for s in fed.cluster_sites if s.cluster == cluster]
        out.append(
            Contribution(
                federation=fed.name,
                spec=spec_name,
                cluster=cluster,
                tenant="",
                server="",
                resources=tuple(sorted(posixpath.relpath(site_dir(s), cluster_dir(cluster)) for s in sites)),
                namespaces=tuple(sorted(s.namespace for s in sites)),
                gateway_ports=(),
                gitops=gitops,
                platform=fed.cluster(cluster).platform,
                tfvars=_files(cluster, site_cluster_tfvars(fed, cluster)),
            )
        )
    return out


def _conflict(a: Contribution, b: Contribution, what: str) -> InputError:
    return InputError(f"federations {a.federation!r} ({a.spec}) and {b.federation!r} ({b.spec}) {what}")


def _check_cluster(members: list[Contribution]) -> None:
    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            if a.tenant and a.tenant == b.tenant:
                raise _conflict(a, b, f"both use tenant {a.tenant!r} on cluster {a.cluster!r}; give each its own tenant")
            if a.server and a.server == b.server:
                raise _conflict(a, b, f"both name their server {a.server!r} on cluster {a.cluster!r}")
            namespaces = sorted((set(a.namespaces) & set(b.namespaces)) - {GATEWAY_NAMESPACE})
            if namespaces:
                raise _conflict(a, b, f"both use namespace(s) {namespaces} on cluster {a.cluster!r}")
            shared_ports = sorted(set(a.gateway_ports) & set(b.gateway_ports))
            if shared_ports:
                raise _conflict(a, b, f"both need ingress gateway port(s) {shared_ports} on cluster {a.cluster!r}; change server.ports of one")
            if a.gitops != b.gitops:
                raise _conflict(a, b, f"disagree on spec.gitops for cluster {a.cluster!r} (one sync root has one source)")
            if a.platform != b.platform:
                raise _conflict(
                    a, b, f"disagree on the platform of cluster {a.cluster!r} ({a.platform} and {b.platform}); set the same platform kind in both specs"
                )


def _merge_tfvars(path: str, members: list[Contribution]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[str, Contribution] = {}
    for c in members:
        for name, value in c.tfvars[path].items():
            if name in LIST_VARIABLES:
                items = {json.dumps(v, sort_keys=True): v for v in merged.get(name, []) + list(value)}
                merged[name] = [items[k] for k in sorted(items)]
            elif name in MAP_VARIABLES:
                target = merged.setdefault(name, {})
                for key, item in value.items():
                    if key in target and target[key] != item:
                        raise _conflict(owner[name], c, f"define {name}[{key!r}] differently")
                    target[key] = item
                owner.setdefault(name, c)
            elif name in merged and merged[name] != value:
                raise _conflict(owner[name], c, f"set Terraform variable {name} to {merged[name]!r} and {value!r}; render them into separate repositories")
            else:
                merged[name] = value
                owner.setdefault(name, c)
    return dict(sorted(merged.items()))


def shared_files(contributions: Iterable[Contribution]) -> dict[str, bytes]:
    members = sorted(contributions, key=lambda c: c.federation)
    files: dict[str, bytes] = {}
    if not members:
        return files
    by_cluster: dict[str, list[Contribution]] = defaultdict(list)
    for c in members:
        by_cluster[c.cluster].append(c)
    for cluster, group in sorted(by_cluster.items()):
        _check_cluster(group)
        specs = ", ".join(sorted({c.spec for c in group}))
        resources = sorted({r for c in group for r in c.resources})
        files[f"{cluster_dir(cluster)}/kustomization.yaml"] = dump_yaml(kustomization(resources), spec_name=specs)
        files.update(_bootstrap(cluster, group, specs))
    by_tfvars: dict[str, list[Contribution]] = defaultdict(list)
    for c in members:
        for path in c.tfvars:
            by_tfvars[path].append(c)
    for path, group in sorted(by_tfvars.items()):
        files[path] = dump_json(_merge_tfvars(path, group))
    return files


def recorded_shared_files(ledgers: Mapping[str, Ledger], *, but: str | None = None, adding: Iterable[Contribution] = ()) -> dict[str, bytes]:
    """The shared files the ledgers' recorded contributions make (but one federation's), with `adding` (a
    render's new contributions). A malformed record, or one that would make a file where fedgen may not
    write, is an InputError naming its ledger."""
    recorded: list[Contribution] = []
    for name, ledger in sorted(ledgers.items()):
        if name == but:
            continue
        try:
            mine = ledger.recorded_contributions()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(f"{ledger_path(name)}: a contribution record is malformed; restore the ledger from git") from None
        for path in shared_files(mine):
            problem = path_problem(path)
            if problem:
                raise InputError(f"{ledger_path(name)}: a contribution names {path!r} ({problem}); restore the ledger from git")
        recorded.extend(mine)
    return shared_files([*recorded, *adding])


def _bootstrap(cluster: str, group: list[Contribution], specs: str) -> dict[str, bytes]:
    """What the operator applies once per cluster to point the GitOps engine at the sync root."""
    gitops = group[0].gitops
    folder = bootstrap_dir(cluster)
    out: dict[str, bytes] = {}
    objects: dict[str, list[dict[str, Any]]]
    if gitops["engine"] == "config-sync":
        objects = {"root-sync.yaml": [root_sync(gitops, cluster)]}
    else:
        apps = f"{folder}/apps"
        namespaces = sorted({ns for c in group for ns in c.namespaces})
        apps_objects = {
            "application.yaml": [argocd.sync_root_application(gitops, cluster)],
            "app-project.yaml": [argocd.app_project(gitops, cluster, namespaces)],
        }
        out.update(folder_files(apps, apps_objects, specs))
        objects = {"root-application.yaml": [argocd.root_application(gitops, cluster, apps)]}
    out.update(folder_files(folder, objects, specs))
    return out
