"""Which kubeconfig context reaches which cluster of the spec.

`--context` may be given several times: `CLUSTER=CONTEXT` for one cluster, or a bare `CONTEXT` when the
federation has a single cluster. Without it, a cluster maps to the context GKE's
`gcloud container clusters get-credentials` writes, `gke_<projectId>_<region>_<cluster>`, or else to a
context named like the cluster. Nothing falls back to the current context: a command that would read (or,
for bootstrap, write) the wrong cluster is refused instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedgen.errors import InputError


@dataclass(frozen=True)
class ClusterRef:
    """What the spec says about a cluster: enough to guess its GKE context."""

    name: str
    project_id: str | None = None
    region: str | None = None


def gke_context(ref: ClusterRef) -> str | None:
    if ref.project_id and ref.region:
        return f"gke_{ref.project_id}_{ref.region}_{ref.name}"
    return None


def parse_context_options(values: Sequence[str], clusters: Sequence[str]) -> dict[str, str]:
    """--context values -> {cluster: context}."""
    out: dict[str, str] = {}
    for value in values:
        cluster, sep, context = value.partition("=")
        if not sep:
            if len(clusters) != 1:
                raise InputError(f"--context {value}: the federation has clusters {', '.join(clusters)}; say which one: --context CLUSTER={value}")
            cluster, context = clusters[0], value
        if cluster not in clusters:
            raise InputError(f"--context {value}: no cluster {cluster!r} in the federation (clusters: {', '.join(clusters)})")
        if not context:
            raise InputError(f"--context {value}: the context name is empty")
        if cluster in out and out[cluster] != context:
            raise InputError(f"--context names two contexts for cluster {cluster}: {out[cluster]} and {context}")
        out[cluster] = context
    return out


def resolve_contexts(refs: Iterable[ClusterRef], available: Iterable[str], explicit: Mapping[str, str], where: str) -> dict[str, str]:
    """{cluster: context} for every ref; InputError naming what was tried when a cluster has none."""
    names = set(available)
    out: dict[str, str] = {}
    for ref in refs:
        if ref.name in explicit:
            context = explicit[ref.name]
            if context not in names:
                raise InputError(f"context {context!r} (for cluster {ref.name}) is not in {where}; it has: {_listing(names)}")
            out[ref.name] = context
            continue
        tried = [c for c in (gke_context(ref), ref.name) if c]
        if ref.project_id is None:
            # Without the spec (fedgen bootstrap): any single gke_<project>_<region>_<cluster> context.
            pattern = re.compile(rf"^gke_[^_]+_[^_]+_{re.escape(ref.name)}$")
            matches = sorted(n for n in names if pattern.match(n))
            if len(matches) > 1:
                raise InputError(f"several contexts in {where} could be cluster {ref.name}: {', '.join(matches)}; pass --context CONTEXT")
            tried = [*matches, ref.name]
        found = next((c for c in tried if c in names), None)
        if found is None:
            raise InputError(
                f"no context for cluster {ref.name} in {where} (looked for {' or '.join(tried) or 'gke_*_*_' + ref.name}); "
                f"pass --context {ref.name}=CONTEXT (contexts: {_listing(names)})"
            )
        out[ref.name] = found
    return out


def _listing(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def kubeconfig_contexts(kubeconfig: Path | None) -> tuple[list[str], str]:
    """(context names, description of where they come from); InputError when the kubeconfig is unreadable."""
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KUBE_CONFIG_DEFAULT_LOCATION, list_kube_config_contexts

    where = str(kubeconfig) if kubeconfig is not None else KUBE_CONFIG_DEFAULT_LOCATION
    try:
        contexts, _current = list_kube_config_contexts(str(kubeconfig) if kubeconfig is not None else None)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read kubeconfig {where}: {_one_line(exc)} (pass --kubeconfig PATH)") from None
    return sorted(str(c.get("name")) for c in contexts or [] if isinstance(c, dict)), f"kubeconfig {where}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
