"""What sites and admins receive: bundles (kit and how to run it), and enrollment for sites keeping their keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.kube.client import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from fedgen.certs.redistribution import WhoMustAct
    from fedgen.enroll.approve import ApproveResult
    from fedgen.enroll.kit import EnrollKit

FROM_CLUSTER = "from-cluster"  # --server-address value: ask the server cluster's LoadBalancer Service


@dataclass(frozen=True)
class BundleResult:
    federation: str
    name: str
    kind: str  # site | admin
    path: Path  # the archive, written owner-only (0600)
    checksum_path: Path  # <archive>.sha256 beside it
    sha256: str
    size: int  # bytes of the archive
    address_from_cluster: str | None = None  # server_address=FROM_CLUSTER: the address the cluster gave


@dataclass(frozen=True)
class ApprovalResult:
    approval: ApproveResult  # what was verified, signed and written (fedgen.enroll.approve)
    who_must_act: WhoMustAct  # the site, when a new certificate was signed for it


@dataclass(frozen=True)
class EnrollKitResult:
    kit: EnrollKit
    folder: Path  # where its files were written
    notes: tuple[str, ...]


def client_bundle(
    *,
    spec: Path,
    name: str,
    state: str | None = None,
    repo: Path = Path("."),
    out: Path | None = None,
    server_address: str | None = None,
    kubeconfig: Path | None = None,
    contexts: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> BundleResult:
    """Build and write the bundle of site or admin `name` (fedgen.bundle): to `out`, by default
    ~/fedgen-bundles/<federation>/<name>.tar.gz; a path git would take is refused. Reads the state, never writes
    it, takes no lock. server_address=FROM_CLUSTER reads the address from the server cluster (kubeconfig,
    contexts, timeout as for status)."""
    from fedgen.bundle import build_bundle, write_bundle

    from_cluster = None
    if server_address == FROM_CLUSTER:
        from fedgen.status import server_address as cluster_address

        server_address = from_cluster = cluster_address(spec=spec, kubeconfig=kubeconfig, contexts=contexts, timeout=timeout)
    bundle = build_bundle(spec=spec, name=name, state=state, repo=repo, server_address=server_address)
    written = write_bundle(bundle, out, repo=repo)
    return BundleResult(bundle.federation, bundle.name, bundle.kind, written.path, written.checksum_path, written.sha256, len(bundle.archive), from_cluster)


def enroll_kit(*, spec: Path, site: str, repo: Path = Path("."), state: str | None = None, out: Path | None = None) -> EnrollKitResult:
    """Write what a site declared with `enrollment: request` needs to request its certificate (default folder
    ./<site>-enroll/); no key, nothing secret. The root CA comes from the state (no lock), else the repo."""
    from fedgen.enroll.kit import make_kit

    kit, folder, notes = make_kit(spec=spec, site=site, repo=repo, state=state, out=out)
    return EnrollKitResult(kit, folder, tuple(notes))


def enroll_approve(
    *, spec: Path, request_zip: Path, repo: Path = Path("."), state: str | None = None, replace_key: bool = False, expected_key: str | None = None
) -> ApprovalResult:
    """Verify a site's request zip, sign it with the federation's CA (NVFlare's `nvflare cert approve`), record
    it in the state and write the signed zip (fedgen.enroll.approve). replace_key signs a key other than the
    one signed for the site before, after first copying the state beside itself (ApproveResult.backup); and
    who must act: the site, when a new certificate was signed for it (and why: a new root CA, server name or fl port
    in its signed zip, or its own new certificate)."""
    from datetime import datetime, timezone

    from fedgen.certs.redistribution import after_approval
    from fedgen.enroll.approve import approve

    result = approve(spec=spec, request_zip=request_zip, repo=repo, state=state, replace_key=replace_key, expected_key=expected_key)
    who = after_approval(
        result.site,
        result.action,
        root=result.signed.rootca_fingerprint,
        previous_root=result.previous_root,
        previous_not_after=result.previous_not_after,
        now=datetime.now(timezone.utc),
        signed=result.signed,
        previous_profile=result.previous_profile,
    )
    return ApprovalResult(result, who)
