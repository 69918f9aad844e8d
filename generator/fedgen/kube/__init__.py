"""Talking to Kubernetes clusters: which context reaches which cluster, and a small JSON client."""

from fedgen.kube.client import ClusterUnreachable, CredentialsRefused, Kube, Resource
from fedgen.kube.contexts import ClusterRef, gke_context, kubeconfig_contexts, parse_context_options, resolve_contexts

__all__ = [
    "ClusterRef",
    "ClusterUnreachable",
    "CredentialsRefused",
    "Kube",
    "Resource",
    "gke_context",
    "kubeconfig_contexts",
    "parse_context_options",
    "resolve_contexts",
]
