"""The federation as typed, frozen records: what every later stage reads.

Every field is set by the loader (fedgen.spec.load) from a document whose defaults the schema filled in, so
no field has a default here: the schema is the one place spec defaults are declared."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from fedgen.refarch import REFERENCE_ARCHITECTURE

# The gcsfuse mount point of the reference architecture; the job store lives below it.
WORKSPACE_MOUNT = "/workspace/nvfl"
# uid/gid the NVFlare container runs as (reference architecture).
RUN_AS_ID = 10000


@dataclass(frozen=True)
class Cluster:
    name: str
    project_id: str
    region: str
    project_number: str | None
    sealing_certificate: Path | None  # site clusters: their own controller's certificate
    platform: str  # reference-architecture | standalone (spec.platform.kind unless overridden)

    @property
    def on_reference_architecture(self) -> bool:
        """The platform's own Config Sync provides the tenant baseline, gateway and mesh; its Terraform takes our variables."""
        return self.platform == REFERENCE_ARCHITECTURE


@dataclass(frozen=True)
class Resources:
    """server.resources: the server container's cpu and memory (request = limit); None = sized by fedgen."""

    cpu: str | None
    memory: str | None


def address_ip(address: str | None) -> str | None:
    """`address` in its normal form when it is an IP address, else None."""
    try:
        return str(ipaddress.ip_address(address)) if address is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Server:
    name: str
    org: str
    cluster: str
    tenant: str
    fl_port: int
    admin_port: int
    host_names: tuple[str, ...]
    exposure: str  # gateway | loadbalancer
    load_balancer_source_ranges: tuple[str, ...]
    external_address: str | None
    max_clients: int | None  # server.maxClients; None = every declared site (fedgen.spec.sizing)
    max_jobs: int  # server.maxJobs: jobs the server runs at once
    resources: Resources

    @property
    def default_host(self) -> str:
        return self.host_names[0]

    @property
    def external_ip(self) -> str | None:
        """externalAddress when it is an IP address: what site clusters map the default host to (hostAliases)
        and allow egress to; a DNS name maps nothing."""
        return address_ip(self.external_address)

    @property
    def workload_name(self) -> str:
        """Deployment name and pod label value, as in the reference architecture."""
        return f"nvflare-{self.name}"


@dataclass(frozen=True)
class Site:
    name: str
    org: str
    cluster: str | None  # runs its client from the repo on this cluster, instead of a bundle
    enrollment: str  # bundle | request (the site keeps its own key; see fedgen enroll)

    @property
    def namespace(self) -> str:
        return f"nvflare-{self.name}"


@dataclass(frozen=True)
class Admin:
    name: str
    org: str
    role: str


# What messages call each spec.gitops.engine.
ENGINE_NAMES = {"config-sync": "Config Sync", "argocd": "Argo CD"}


@dataclass(frozen=True)
class GitOps:
    engine: str  # config-sync | argocd
    repo: str
    revision: str
    auth: str
    secret_ref: str | None
    gcp_service_account_email: str | None

    @property
    def engine_name(self) -> str:
        return ENGINE_NAMES[self.engine]


@dataclass(frozen=True)
class Sealing:
    certificate: Path | None  # absolute path, resolved against the spec's folder
    scope: str  # strict | namespace-wide | cluster-wide


@dataclass(frozen=True)
class Platform:
    kind: str  # the default for every cluster (see Cluster.platform)
    resource_name_prefix: str
    platform_name: str


@dataclass(frozen=True)
class Workspace:
    bucket: str
    bucket_name: str  # the real GCS bucket name
    # The bucket is the one the reference architecture's cloud_storage module creates for the key `bucket`
    # (<project>-<prefix>-<platform>-<bucket>), not one named outright elsewhere by workspace.bucketName.
    platform_bucket: bool


@dataclass(frozen=True)
class Federation:
    name: str  # NVFlare project name
    nvflare_version: str
    image: str
    gitops: GitOps
    sealing: Sealing
    clusters: tuple[Cluster, ...]
    platform: Platform
    workspace: Workspace
    server: Server
    sites: tuple[Site, ...]
    admins: tuple[Admin, ...]
    spec_path: Path  # absolute path of the spec file
    node_pool_machine_type: str

    @property
    def server_cluster(self) -> Cluster:
        return next(c for c in self.clusters if c.name == self.server.cluster)

    def cluster(self, name: str) -> Cluster:
        return next(c for c in self.clusters if c.name == name)

    @property
    def cluster_sites(self) -> tuple[Site, ...]:
        return tuple(s for s in self.sites if s.cluster)

    @property
    def provisioned(self) -> Federation:
        """The federation fedgen issues keys for: sites enrolling by request make their own."""
        from dataclasses import replace

        return replace(self, sites=tuple(s for s in self.sites if s.enrollment != "request"))

    @property
    def workload_buckets(self) -> tuple[str, ...]:
        """Every Cloud Storage bucket a rendered workload can reach: the server mounts the workspace bucket
        read-write (gcsfuse) and its KSA is granted it in the tfvars; site Deployments mount none. A state kept
        in one of these would put the CA key within reach of the server pod (tests check this list against the
        rendered tree)."""
        return (self.workspace.bucket_name,)

    @property
    def participant_names(self) -> tuple[str, ...]:
        return (self.server.name, *(s.name for s in self.sites), *(a.name for a in self.admins))

    def participant_org(self, name: str) -> str:
        participants: tuple[Server | Site | Admin, ...] = (self.server, *self.sites, *self.admins)
        for p in participants:
            if p.name == name:
                return p.org
        raise KeyError(name)
