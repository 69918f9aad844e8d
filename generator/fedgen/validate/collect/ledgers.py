"""The ledgers as validate sees them: each file as found (fedgen.ledger: the one format and parser), the
digest of every file it names as the repo holds it now, and what the shared files should hold."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from fedgen.ledger import Ledger, LedgerFile
from fedgen.validate.model import RepoLedger


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def expected_shared(ledgers: Iterable[Ledger]) -> dict[str, str]:
    """sha256 of the files federations share (sync root kustomizations, bootstrap, tfvars), recomputed from
    the contributions recorded in the ledgers, exactly as a render would write them; {} when that fails."""
    from fedgen.render.shared import shared_files

    try:
        contributions = [c for ledger in ledgers for c in ledger.recorded_contributions()]
        return {path: hashlib.sha256(data).hexdigest() for path, data in shared_files(contributions).items()}
    except Exception:  # noqa: BLE001 - an old or foreign record format: shared files are then checked for presence only
        return {}


def preliminary_ledgers(found: list[LedgerFile]) -> tuple[RepoLedger, ...]:
    """Ledgers without the repo's digests: enough to know each federation's spec and owned paths."""
    return tuple(RepoLedger(f.path, f.ledger, f.error) for f in found)


def finish_ledgers(repo: Path, found: list[LedgerFile], listed: frozenset[str]) -> tuple[RepoLedger, ...]:
    """Ledgers with the digest of every recorded file now and the expected digests of shared files. Only
    files validate lists are read (a ledger may name anything: ../../etc/passwd is simply missing)."""
    shared_digests = expected_shared(f.ledger for f in found if f.ledger is not None)
    out = []
    for f in found:
        if f.ledger is None:
            out.append(RepoLedger(f.path, None, f.error))
            continue
        actual = {p: _digest(repo / p) if p in listed else None for p in sorted(f.ledger.owned)}
        expected = {p: shared_digests[p] for p in f.ledger.shared if p in shared_digests}
        out.append(RepoLedger(f.path, f.ledger, actual=actual, shared_expected=expected))
    return tuple(out)
