"""Checks the JSON Schema cannot express: references, uniqueness, names that become paths or Kubernetes
names, reserved namespaces, CIDRs, bucket names, the nvflare version, the sealing certificate."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.nvflare_version import installed_nvflare_version
from fedgen.refarch import REFERENCE_ARCHITECTURE

Path_ = list[str | int]
Problem = tuple[Path_, str, bool]  # (path in the document, message, point at the key rather than the value)

# Server and tenant names are prefixed and suffixed to name objects (nvflare-<server>-startup,
# nvflare-<tenant>), so they stay 23 characters short of the 63 a DNS label allows.
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")  # RFC 1035 label: Service names
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # folders, object names
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
NVFLARE_ORG = re.compile(r"^[A-Za-z0-9_]{1,63}$")
EMAIL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$")
RESERVED_NAMESPACES = frozenset(
    {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "istio-system",
        "istio-ingress",
        "istio-egress",
        "config-management-system",
        "config-management-monitoring",
        "resource-group-system",
        "gatekeeper-system",
        "gke-managed-system",
        "gmp-system",
        "gmp-public",
        "argocd",
        "cnrm-system",
    }
)
RESERVED_NAMESPACE_PREFIXES = ("kube-", "gke-", "istio-", "config-management-", "gatekeeper-")
CERT_MAX_BYTES = 64 * 1024


def semantic_problems(data: dict[str, Any], spec_dir: Path, *, now: datetime | None = None) -> list[Problem]:
    """Run only on a document that passed the schema, with its defaults filled in (fedgen.spec.defaults), so
    every field has its declared type and every field with a default is there."""
    spec: dict[str, Any] = data["spec"]
    return [
        *_names(spec),
        *_references(spec),
        *_revision(spec),
        *_server(spec),
        *_workspace(spec),
        *_project_number(spec),
        *_nvflare_version(spec),
        *_sealing(spec, spec_dir, now or datetime.now(timezone.utc)),
    ]


def _names(spec: dict[str, Any]) -> Iterator[Problem]:
    server = spec["server"]
    if not DNS_LABEL.fullmatch(server["name"]):
        yield (
            ["spec", "server", "name"],
            f"server name {server['name']!r} must be a DNS label (lower-case letters, digits, '-', starting with a letter, at most 40): it becomes the Service name clients dial",
            False,
        )
    for i, cluster in enumerate(spec["clusters"]):
        if not DNS_1123_LABEL.fullmatch(cluster["name"]):
            yield (
                ["spec", "clusters", i, "name"],
                f"cluster name {cluster['name']!r} must be a DNS label (lower-case letters, digits, '-'): it becomes the folder clusters/<name>",
                False,
            )
    for i, site in enumerate(spec["sites"]):
        if not DNS_1123_LABEL.fullmatch(site["name"]):
            yield (
                ["spec", "sites", i, "name"],
                f"site name {site['name']!r} must be a DNS label (lower-case letters, digits, '-', at most 63): it becomes file and object names",
                False,
            )
    for i, admin in enumerate(spec["admins"]):
        if not EMAIL.fullmatch(admin["name"]) or ".." in admin["name"]:
            yield (
                ["spec", "admins", i, "name"],
                f"admin name {admin['name']!r} must be an e-mail address starting with a letter or digit (NVFlare requires an e-mail; it becomes a file name in commands)",
                False,
            )
    orgs: list[tuple[Path_, str]] = [(["spec", "server", "org"], server["org"])]
    orgs += [(["spec", "sites", i, "org"], s["org"]) for i, s in enumerate(spec["sites"])]
    orgs += [(["spec", "admins", i, "org"], a["org"]) for i, a in enumerate(spec["admins"])]
    for path, org in orgs:
        if not NVFLARE_ORG.fullmatch(org):
            yield (path, f"org {org!r} may hold only letters, digits and '_' (NVFlare rejects anything else, '-' included)", False)
    seen: dict[str, str] = {}
    entries: list[tuple[Path_, str, str]] = [(["spec", "server", "name"], server["name"], "server")]
    entries += [(["spec", "sites", i, "name"], s["name"], f"sites[{i}]") for i, s in enumerate(spec["sites"])]
    entries += [(["spec", "admins", i, "name"], a["name"], f"admins[{i}]") for i, a in enumerate(spec["admins"])]
    entries += [(["spec", "clusters", i, "name"], c["name"], f"clusters[{i}]") for i, c in enumerate(spec["clusters"])]
    for path, name, label in entries:
        folded = name.lower()
        if folded in seen:
            yield (path, f"name {name!r} is already used by {seen[folded]}; participant and cluster names must be unique", False)
        else:
            seen[folded] = label


def _references(spec: dict[str, Any]) -> Iterator[Problem]:
    clusters = [c["name"] for c in spec["clusters"]]
    if spec["server"]["cluster"] not in clusters:
        yield (["spec", "server", "cluster"], f"server.cluster {spec['server']['cluster']!r} is not in spec.clusters (known: {', '.join(clusters)})", False)
    for i, site in enumerate(spec["sites"]):
        if "cluster" not in site:
            continue
        if site["enrollment"] == "request":
            yield (
                ["spec", "sites", i, "enrollment"],
                f"site {site['name']!r} enrolls by request (it keeps its key), so fedgen cannot deploy it on a cluster; drop one of cluster or enrollment",
                False,
            )
            continue
        if site["cluster"] not in clusters:
            yield (["spec", "sites", i, "cluster"], f"sites[{i}].cluster {site['cluster']!r} is not in spec.clusters (known: {', '.join(clusters)})", False)
        elif site["cluster"] == spec["server"]["cluster"]:
            yield (
                ["spec", "sites", i, "cluster"],
                f"site {site['name']!r} cannot run on the server's cluster {site['cluster']!r}; give it its own cluster or use a bundle",
                False,
            )
    gitops = spec["gitops"]
    auth = gitops["auth"]
    if auth in ("ssh", "cookiefile", "token", "githubapp") and "secretRef" not in gitops:
        yield (["spec", "gitops", "auth"], f"gitops.auth {auth!r} needs gitops.secretRef (a Secret in config-management-system)", False)
    if auth == "gcpserviceaccount" and "gcpServiceAccountEmail" not in gitops:
        yield (["spec", "gitops", "auth"], "gitops.auth 'gcpserviceaccount' needs gitops.gcpServiceAccountEmail", False)
    if not any(a["role"] == "project_admin" for a in spec["admins"]):
        yield (["spec", "admins"], "at least one admin must have role 'project_admin' (someone has to submit jobs)", True)


def git_ref_problem(ref: str) -> str | None:
    """Why `ref` is not a git ref name by `git check-ref-format --allow-onelevel` (within the schema's letters,
    digits and . _ - + /, which leave out every character git refuses and every shell metacharacter), or
    None. A leading '-' is refused too: git would read it as an option."""
    if ref.startswith("-"):
        return "it starts with '-'"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "it starts or ends with '/' or holds '//'"
    if ".." in ref:
        return "it holds '..'"
    if ref.endswith("."):
        return "it ends with '.'"
    for part in ref.split("/"):
        if part.startswith("."):
            return f"its component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"its component {part!r} ends with '.lock'"
    return None


def _revision(spec: dict[str, Any]) -> Iterator[Problem]:
    revision = spec["gitops"]["revision"]
    problem = git_ref_problem(revision)
    if problem is not None:
        yield (["spec", "gitops", "revision"], f"gitops.revision {revision!r} is not a git branch, tag or commit name: {problem} (git check-ref-format)", False)


def _server(spec: dict[str, Any]) -> Iterator[Problem]:
    server = spec["server"]
    tenant = server["tenant"]
    if not NAMESPACE.fullmatch(tenant):
        yield (["spec", "server", "tenant"], f"tenant {tenant!r} must be a DNS label (lower-case letters, digits, '-', at most 40): it is a namespace", False)
    elif tenant in RESERVED_NAMESPACES or tenant.startswith(RESERVED_NAMESPACE_PREFIXES):
        yield (["spec", "server", "tenant"], f"tenant {tenant!r} is a reserved namespace; pick a namespace of your own (e.g. fl-1)", False)
    ports = server["ports"]
    if ports["fl"] == ports["admin"]:
        yield (["spec", "server", "ports", "admin"], f"admin port {ports['admin']} equals the fl port; NVFlare needs two ports", False)
    hosts = server.get("hostNames") or []  # absent: the server's name, a DNS label checked above
    for i, host in enumerate(hosts):
        if not HOST_NAME.fullmatch(host):
            yield (["spec", "server", "hostNames", i], f"host name {host!r} is not a DNS host name (lower-case, dot-separated labels)", False)
    if len(set(hosts)) != len(hosts):
        yield (["spec", "server", "hostNames"], "hostNames lists a name twice", False)
    address = server.get("externalAddress")
    if address is not None and not (_is_ip(address) or HOST_NAME.fullmatch(address)):
        yield (["spec", "server", "externalAddress"], f"externalAddress {address!r} is neither an IP address nor a DNS host name", False)
    for i, cidr in enumerate(server["loadBalancerSourceRanges"]):
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            yield (["spec", "server", "loadBalancerSourceRanges", i], f"{cidr!r} is not a CIDR ({exc})", False)
    declared = len(spec["sites"])
    if "maxClients" in server and server["maxClients"] < declared:
        yield (
            ["spec", "server", "maxClients"],
            f"maxClients {server['maxClients']} admits fewer clients than the {declared} declared sites: NVFlare would refuse {declared - server['maxClients']} of them ('Maximum number of clients reached')",
            False,
        )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _workspace(spec: dict[str, Any]) -> Iterator[Problem]:
    ws = spec["workspace"]
    if "bucketName" in ws:
        path: Path_ = ["spec", "workspace", "bucketName"]
        name = ws["bucketName"]
        what = "workspace.bucketName"
    else:
        path = ["spec", "workspace", "bucket"]
        name = derived_bucket_name(spec)
        what = f"the derived bucket name {name!r} (<projectId>-<resourceNamePrefix>-<platformName>-<bucket>)"
    if name is None:
        return
    if not BUCKET.fullmatch(name) or ".." in name or name.startswith("goog") or "google" in name:
        yield (path, f"{what} is not a valid GCS bucket name (3-63 of a-z 0-9 - _ ., starting and ending with a letter or digit, no 'goog' prefix)", False)
    elif len(name) > 63:
        yield (path, f"{what} is longer than 63 characters; set workspace.bucketName", False)


def derived_bucket_name(spec: dict[str, Any]) -> str | None:
    ws = spec["workspace"]
    if "bucketName" in ws:
        return str(ws["bucketName"])
    return platform_bucket_name(spec)


def platform_bucket_name(spec: dict[str, Any]) -> str | None:
    """The bucket the reference architecture's cloud_storage module creates for the key workspace.bucket."""
    cluster = _server_cluster(spec)
    if cluster is None:
        return None
    platform = spec["platform"]
    return f"{cluster['projectId']}-{platform['resourceNamePrefix']}-{platform['platformName']}-{spec['workspace']['bucket']}"


def _server_cluster(spec: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in spec["clusters"] if c["name"] == spec["server"]["cluster"]), None)


def _platform_kind(spec: dict[str, Any], cluster: dict[str, Any]) -> str:
    """A cluster's own platform kind, else the federation's (as the loader derives it)."""
    return str(cluster["platform"]["kind"] if "platform" in cluster else spec["platform"]["kind"])


def _project_number(spec: dict[str, Any]) -> Iterator[Problem]:
    """On the reference architecture the workspace bucket's IAM binding names the tenant's Workload Identity
    principal by project number; without the binding the server's gcsfuse mount is refused."""
    cluster = _server_cluster(spec)
    if cluster is None or "projectNumber" in cluster or _platform_kind(spec, cluster) != REFERENCE_ARCHITECTURE:
        return
    i = spec["clusters"].index(cluster)
    yield (
        ["spec", "clusters", i],
        f"server cluster {cluster['name']!r} needs projectNumber (the workspace bucket's IAM binding names the server's "
        f"Workload Identity principal by it; get it with: gcloud projects describe {cluster['projectId']} --format='value(projectNumber)')",
        False,
    )


def _nvflare_version(spec: dict[str, Any]) -> Iterator[Problem]:
    wanted = spec["nvflare"]["version"]
    installed = installed_nvflare_version()
    if installed is None:
        yield (["spec", "nvflare", "version"], "the nvflare library is not installed; fedgen provisions with it (pip install nvflare)", False)
    elif wanted.split(".")[:2] != installed.split(".")[:2]:
        yield (
            ["spec", "nvflare", "version"],
            f"nvflare.version {wanted} does not match the installed nvflare {installed} (major.minor must agree: kits provisioned by one are run by the other)",
            False,
        )


def certificate_paths(spec: dict[str, Any]) -> list[tuple[Path_, str]]:
    """(position, path as written) of every sealing certificate a schema-valid spec names. Also run on
    documents not yet checked or filled in (validate's path guard), so it asks whether each part is there."""
    certs: list[tuple[Path_, str]] = []
    sealing = spec.get("sealing")
    if isinstance(sealing, dict) and "certificate" in sealing:
        certs.append((["spec", "sealing", "certificate"], sealing["certificate"]))
    certs += [(["spec", "clusters", i, "sealing", "certificate"], c["sealing"]["certificate"]) for i, c in enumerate(spec["clusters"]) if "sealing" in c]
    return certs


def _sealing(spec: dict[str, Any], spec_dir: Path, now: datetime) -> Iterator[Problem]:
    for path, cert in certificate_paths(spec):
        yield from _sealing_certificate(path, cert, spec_dir, now)


def _sealing_certificate(path: Path_, cert: str, spec_dir: Path, now: datetime) -> Iterator[Problem]:
    cert_path = (spec_dir / cert).resolve()
    try:
        with cert_path.open("rb") as fh:
            pem = fh.read(CERT_MAX_BYTES + 1)
    except OSError as exc:
        yield (path, f"sealing certificate {cert!r} cannot be read ({exc.strerror}); fetch it with kubeseal --fetch-cert", False)
        return
    if len(pem) > CERT_MAX_BYTES:
        yield (path, f"sealing certificate {cert!r} is larger than {CERT_MAX_BYTES // 1024} KiB; expected one PEM certificate", False)
        return
    from fedgen.spec.sealing_certificate import load_certificate

    try:
        load_certificate(pem, origin=cert, now=now)
    except InputError as exc:
        yield (path, str(exc), False)
