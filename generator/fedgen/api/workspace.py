"""The NVFlare server's workspace bucket."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedgen.workspace import PushAction, PushResult


def workspace_push(
    *,
    spec: Path,
    jobs: Sequence[Path] = (),
    state: str | None = None,
    repo: Path = Path("."),
    dry_run: bool = False,
    progress: Callable[[str, PushAction], None] | None = None,
) -> PushResult:
    """Upload the job folders to the workspace bucket, skipping objects whose CRC32C already matches
    (fedgen.workspace.push). A dry run reads no state, takes no lock, writes nothing, and without credentials
    lists the bucket anonymously. progress(url, action) is called after each upload."""
    from fedgen.workspace import push

    return push(spec=spec, jobs=list(jobs), state=state, repo=repo, dry_run=dry_run, progress=progress)
