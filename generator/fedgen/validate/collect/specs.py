"""The specs the ledgers name, loaded as render loads them (no state needed), without reading anything
outside the repository: what validate knows of each federation (SpecInfo), and the input of its re-render."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedgen.errors import ExternalError, FedgenError
from fedgen.validate.kustomization import Guard
from fedgen.validate.model import SpecInfo
from fedgen.validate.yamlsource import load_all_plain

if TYPE_CHECKING:
    from fedgen.provision.static import StaticKits


def _key_bytes(path: Path | None) -> tuple[int | None, str | None]:
    if path is None:
        return None, None
    from fedgen.spec.sealing_certificate import load_certificate

    try:
        cert = load_certificate(path.read_bytes(), origin=str(path))
    except (OSError, FedgenError) as exc:
        return None, str(exc).splitlines()[0]
    return (cert.key_size + 7) // 8, None


def _read_spec_head(repo: Path, spec: str) -> Any:
    """The spec's first document as plain data (libyaml, at most the spec loader's size), or None."""
    from fedgen.spec import MAX_BYTES as SPEC_MAX_BYTES

    try:
        with (repo / spec).open("rb") as fh:
            docs = load_all_plain(fh.read(SPEC_MAX_BYTES).decode("utf-8"))
        return docs[0] if docs else None
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the spec
        return None


def _outside(repo: Path, spec: str, guard: Guard) -> str | None:
    """Why validate may not read the spec or a sealing certificate it names (a hostile repo's spec may
    point anywhere), or None. The spec loader reads certificates only for specs its schema accepts, and for
    those libyaml reads the same paths."""
    problem = guard.file_problem(spec)
    if problem is not None:
        return f"spec {problem}"
    from fedgen.spec.semantic import certificate_paths

    try:
        certificates = certificate_paths(_read_spec_head(repo, spec)["spec"])
    except Exception:  # noqa: BLE001 - not a schema-valid spec: the loader stops before any certificate
        return None
    folder = posixpath.dirname(spec) or "."
    for _, cert in certificates:
        problem = guard.file_problem(cert, folder)
        if problem is not None:
            return f"sealing certificate {problem}"
    return None


def read_spec(repo: Path, spec: str, guard: Guard) -> SpecInfo:
    """Load a ledger's spec like render does (no state needed) and read its sealing certificates; nothing
    outside the repository (or behind a symbolic link) is read."""
    from fedgen.spec import load_federation

    path = repo / spec
    if not path.is_file():
        return SpecInfo(path=spec, exists=False)
    outside = _outside(repo, spec, guard)
    if outside is not None:
        return SpecInfo(path=spec, exists=True, error=f"{outside}: not read")
    try:
        fed = load_federation(path)
    except FedgenError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return SpecInfo(path=spec, exists=True, error=first.replace(str(path), spec))
    key_bytes, sealing_error = _key_bytes(fed.sealing.certificate)
    per_cluster = {}
    for cluster in fed.clusters:
        size, _ = _key_bytes(getattr(cluster, "sealing_certificate", None))
        if size is not None:
            per_cluster[cluster.name] = size
    site_clusters = tuple(sorted({str(s.cluster) for s in fed.sites if getattr(s, "cluster", None)}))
    return SpecInfo(
        path=spec,
        exists=True,
        federation=fed,
        engine=fed.gitops.engine,
        repo=fed.gitops.repo,
        revision=fed.gitops.revision,
        sealing_scope=fed.sealing.scope,
        sealing_key_bytes=key_bytes,
        sealing_error=sealing_error,
        server_cluster=fed.server.cluster,
        cluster_key_bytes=per_cluster,
        site_clusters=site_clusters,
    )


def quick_engine(repo: Path, spec: str, guard: Guard) -> str | None:
    """spec.gitops.engine read without the full spec load, to start the builds early."""
    if guard.file_problem(spec) is not None:
        return None
    try:
        return str(_read_spec_head(repo, spec)["spec"]["gitops"]["engine"])
    except Exception:  # noqa: BLE001 - the full load reports what is wrong with the spec
        return None


def spec_hint(repo: Path, spec: str) -> str:
    """What identifies a spec's NVFlare input before it is loaded: its bytes (see StaticKits)."""
    try:
        path = (repo / spec).resolve()
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_relative_to(repo) else f"outside {spec}"
    except OSError:
        return f"unreadable {spec}"


def static_kits(kits: StaticKits, repo: Path, specs: Mapping[str, SpecInfo]) -> Callable[[], dict[str, Any]]:
    """Ask the worker for NVFlare's static kit files of every loaded spec's federation; the function returned
    waits for them: spec path -> the kits, or one line saying why there are none."""
    from fedgen.provision.static import static_request

    out: dict[str, Any] = {}
    asked: list[tuple[str, str, dict[str, Any]]] = []
    for path, info in sorted(specs.items()):
        if info.federation is not None:
            try:
                asked.append((path, spec_hint(repo, path), static_request(info.federation)))
            except FedgenError as exc:
                out[path] = str(exc)
    paths = [a[0] for a in asked]
    try:
        answers = kits.ask([(hint, request) for _, hint, request in asked])
    except ExternalError as exc:
        out.update((p, str(exc)) for p in paths)
        return lambda: out

    def wait() -> dict[str, Any]:
        try:
            out.update(zip(paths, answers()))
        except ExternalError as exc:
            out.update((p, str(exc)) for p in paths)
        return out

    return wait
