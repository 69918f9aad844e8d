"""The files under enrollment/ (sites that keep their own keys): each read with a bound and inspected by
fedgen.enroll's pure checks, and the root CA each such federation's server trusts. Nothing of fedgen.enroll
is imported when the repo has no enrollment files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from fedgen.errors import FedgenError
from fedgen.validate.model import EnrollmentZip, RepoLedger, SpecInfo

ENROLLMENT_PREFIX = "enrollment/"


def _read_capped(path: Path, cap: int) -> bytes | None:
    """At most cap + 1 bytes of the file (so 'larger than cap' is known without reading it all)."""
    try:
        with path.open("rb") as fh:
            return fh.read(cap + 1)
    except OSError:
        return None


def _reason(exc: Exception, what: str) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix(f"{what}: ")


def read_enrollment_zip(repo: Path, rel: str) -> EnrollmentZip:
    """One file under enrollment/: a bounded binary read (64 KiB) and fedgen.enroll's pure inspection."""
    from fedgen.enroll import PrivateKeyFound, classify, inspect_request_zip, inspect_signed_zip
    from fedgen.enroll.zips import MAX_ZIP_BYTES
    from fedgen.errors import InputError

    where = classify(rel)
    data = _read_capped(repo / rel, MAX_ZIP_BYTES)

    def made(**found: Any) -> EnrollmentZip:
        if where is None:
            return EnrollmentZip(rel, None, None, None, **found)
        return EnrollmentZip(rel, where.federation, where.kind, where.site, **found)

    # A file out of place is only looked into for keys: what else is wrong with it does not matter.
    if data is None:
        return made(error="the file cannot be read" if where is not None else None)
    if len(data) > MAX_ZIP_BYTES:
        return made(error=f"more than the {MAX_ZIP_BYTES} bytes an enrollment zip may have" if where is not None else None)
    try:
        if where is not None and where.kind == "signed":
            return made(signed=inspect_signed_zip(data, what=rel))
        info = inspect_request_zip(data, what=rel)
        return made(request=info) if where is not None else made()
    except PrivateKeyFound as exc:
        return made(private_key=_reason(exc, rel))
    except InputError as exc:
        return made(error=_reason(exc, rel) if where is not None else None)
    except Exception as exc:  # noqa: BLE001 - hostile bytes the checks did not foresee: a finding, never a traceback
        return made(error=f"cannot be inspected ({type(exc).__name__}: {_reason(exc, rel)})" if where is not None else None)


def read_enrollment(
    repo: Path, paths: Iterable[str], specs: Mapping[str, SpecInfo], ledgers: tuple[RepoLedger, ...]
) -> tuple[tuple[EnrollmentZip, ...], dict[str, SpecInfo]]:
    """Every file under enrollment/ (sorted), and the specs completed with the root CA each server trusts
    (read only for federations that have enrollment files). Nothing of fedgen.enroll is imported otherwise."""
    rels = sorted(p for p in paths if p.startswith(ENROLLMENT_PREFIX))
    out_specs = dict(specs)
    if not rels:
        return (), out_specs
    zips = tuple(read_enrollment_zip(repo, rel) for rel in rels)
    from fedgen.enroll import server_root_pem

    federations = {z.federation for z in zips if z.federation}
    for ledger in ledgers:
        if ledger.error or ledger.spec is None or ledger.federation not in federations:
            continue
        info = out_specs.get(ledger.spec)
        if info is None or info.federation is None or info.server_root_pem is not None:
            continue
        try:
            root = server_root_pem(repo, info.federation)
        except FedgenError:  # the ConfigMap is broken: the consistency rules report it
            root = None
        out_specs[ledger.spec] = replace(info, server_root_pem=root)
    return zips, out_specs
