"""The certificate lifecycle: what the state holds and when it expires, and re-issuing certificates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedgen.errors import InputError

if TYPE_CHECKING:
    from fedgen.api.rendering import RenderResult
    from fedgen.certs.lifecycle import CertificateInfo
    from fedgen.certs.offboarding import RootRotationPlan, StillValid


@dataclass(frozen=True)
class CertificateReport:
    federation: str
    certificates: tuple[CertificateInfo, ...]  # the root CA first, then the spec's participants in spec order
    # Participants the spec no longer declares whose certificates still chain to the root CA (NVFlare checks no
    # revocation), and what a new root CA, the only end to them, requires (None when there are none).
    still_valid: tuple[StillValid, ...] = ()
    root_rotation: RootRotationPlan | None = None

    @property
    def needs_attention(self) -> bool:
        """One is expired, expiring within the threshold, never issued, or stale (issued under an old root)."""
        from fedgen.certs.lifecycle import needs_attention

        return needs_attention(list(self.certificates))


def certificates(*, spec: Path, repo: Path = Path("."), state: str | None = None, within_days: int = 30) -> CertificateReport:
    """Every certificate of the federation with its expiry, read from the state (no lock, reads only); and
    those of removed participants that are still valid."""
    from datetime import datetime, timezone

    from fedgen.certs.lifecycle import certificate_report
    from fedgen.certs.offboarding import root_rotation_plan, still_valid
    from fedgen.spec import load_federation
    from fedgen.state import federation_store

    fed = load_federation(spec)
    document = federation_store(fed, state, repo.resolve()).load()
    now = datetime.now(timezone.utc)
    valid = still_valid(document, declared=fed.participant_names, now=now)
    report = certificate_report(fed, document, within_days=within_days, now=now)
    return CertificateReport(fed.name, tuple(report), valid, root_rotation_plan(fed) if valid else None)


def rotate(
    *,
    spec: Path,
    repo: Path = Path("."),
    state: str | None = None,
    participant: str | None = None,
    root_ca: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Re-issue one participant's key and certificate, or (root_ca) start a new root CA, then render.

    A new root CA re-issues every certificate; the state is first copied beside itself (RenderResult.backup).
    RenderResult.who_must_act names who needs a new kit; progress as for render.
    """
    from fedgen.api.rendering import render

    if bool(participant) == root_ca:
        raise InputError("name exactly one PARTICIPANT to rotate, or pass --root-ca")
    return render(spec=spec, repo=repo, state=state, reissue=[participant] if participant else [], new_root_ca=root_ca, progress=progress)
