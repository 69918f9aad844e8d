"""What a spec asks of the reference architecture beyond what its Terraform modules give by themselves:
render warns about each, saying what to do (pure: spec in, messages out)."""

from __future__ import annotations

from fedgen import refarch
from fedgen.render.tfvars import OBJECT_USER_ROLE, workspace_member
from fedgen.spec.model import Federation


def platform_warnings(fed: Federation) -> list[str]:
    return [*_ports(fed), *_regions(fed), *_bucket(fed)]


def _ports(fed: Federation) -> list[str]:
    """Its firewall opens TCP 8002/8003 only: ingress to the server cluster's gateway nodes and egress from
    site clusters' node pools."""
    ports = sorted({fed.server.fl_port, fed.server.admin_port} - set(refarch.FIREWALL_PORTS))
    if not ports:
        return []
    server = fed.server_cluster
    sites = sorted({s.cluster for s in fed.cluster_sites if s.cluster and fed.cluster(s.cluster).on_reference_architecture})
    where = []
    if server.on_reference_architecture:
        where.append(f"ingress to cluster {server.name}'s nodes")
    if sites:
        where.append(f"egress from the node pools of {', '.join(sites)}")
    if not where:
        return []
    opened = "/".join(str(p) for p in refarch.FIREWALL_PORTS)
    policy = refarch.firewall_policy_name(fed.platform.resource_name_prefix, fed.platform.platform_name)
    return [
        f"server.ports uses TCP {', '.join(str(p) for p in ports)}, but the reference architecture's firewall opens only {opened}: "
        f"add rules allowing TCP {', '.join(str(p) for p in ports)} ({' and '.join(where)}) to the firewall policy {policy} "
        f"of each cluster, or use ports {opened}"
    ]


def _regions(fed: Federation) -> list[str]:
    odd = sorted({c.region for c in fed.clusters if c.on_reference_architecture and c.region not in refarch.CLUSTER_REGIONS})
    if not odd:
        return []
    return [
        f"region(s) {', '.join(odd)}: the reference architecture's cluster_region accepts only {', '.join(refarch.CLUSTER_REGIONS)}, "
        "so terraform plan of its modules refuses the cluster variables"
    ]


def _bucket(fed: Federation) -> list[str]:
    """A bucket named outright (workspace.bucketName) is not one the platform creates, so no binding is fed."""
    if not fed.server_cluster.on_reference_architecture or fed.workspace.platform_bucket:
        return []
    member = workspace_member(fed)
    return [
        f"workspace.bucketName {fed.workspace.bucket_name!r} is not a bucket the reference architecture creates, so its Terraform "
        f"grants the server nothing on it; grant it yourself: gcloud storage buckets add-iam-policy-binding gs://{fed.workspace.bucket_name} "
        f"--member={member} --role={OBJECT_USER_ROLE}"
    ]
