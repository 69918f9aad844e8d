"""Build one participant's bundle from the spec and the state, and write it owner-only.

Render before bundle: a bundle never changes the state. It is built from the certificates the state already
holds; when the spec names something the state has no current certificate for (a new site, a changed org or
role, a changed server host name, an empty state), it refuses and asks for `fedgen render` first. Issuing in
the bundle would hand a site a certificate, possibly from a brand-new root CA, that the deployed server has
never seen, and would make the bundle a second writer of the state. One writer (render), many readers.
Readers take no lock: every save replaces the whole document atomically (os.replace; one GCS object
generation), so a bundle reads one consistent state, and bundles run side by side with each other and with a
render.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from fedgen.bundle import k8s, texts
from fedgen.bundle.archive import Entry, sha256_hex, tar_gz, write_atomic
from fedgen.bundle.destination import check_outside_repository, default_out, prepare_default
from fedgen.bundle.model import BundleContext, find_participant, server_target
from fedgen.errors import ExternalError, InputError
from fedgen.spec import load_federation

KEY_MARKER = b"PRIVATE KEY"
FILE_MODE = 0o644
EXEC_MODE = 0o755
ARCHIVE_MODE = 0o600
CHECKSUM_FILE_MODE = 0o644


@dataclass(frozen=True)
class Bundle:
    federation: str
    name: str
    kind: str  # site | admin
    files: Mapping[str, Entry]  # archive path ("<name>/...") -> data and mode
    empty_dirs: tuple[str, ...]
    archive: bytes
    sha256: str


@dataclass(frozen=True)
class WrittenBundle:
    path: Path
    checksum_path: Path
    sha256: str


def build_bundle(
    *,
    spec: Path,
    name: str,
    state: str | None = None,
    repo: Path = Path("."),
    server_address: str | None = None,
) -> Bundle:
    """The bundle of site or admin `name` (InputError for unknown names, the server, or an unrendered state)."""
    from fedgen.provision import provision
    from fedgen.state import federation_store

    fed = load_federation(spec)
    participant = find_participant(fed, name)
    if any(s.name == name and s.enrollment == "request" for s in fed.sites):
        raise InputError(
            f"{name} enrolls by request: it makes its own key, so fedgen has no bundle for it; give it "
            f"`{shlex.join(['fedgen', 'enroll', 'kit', name, '--spec', str(spec)])}` and approve its request with `fedgen enroll approve`"
        )
    target = server_target(fed, server_address)
    store = federation_store(fed, state, repo.resolve())
    document = store.load()
    document.require_project(fed.name, store.description)
    if not document.nvflare_cert:
        raise InputError(
            f"state {store.description} holds no certificates yet: run `fedgen render {shlex.quote(str(spec))}` first "
            "(pass the same --state), then make the bundle"
        )
    result = provision(fed.provisioned, document, kits_for=[name])
    if result.issued:
        raise InputError(
            f"state {store.description} is behind the spec: a render would issue certificates for "
            f"{', '.join(result.issued)}. Run `fedgen render {shlex.quote(str(spec))}` and commit first, so the site and the "
            "cluster share one state (a bundle never writes the state)"
        )
    ctx = BundleContext(fed, participant, target, spec.name)
    return assemble(ctx, {path: Entry(f.data, f.mode) for path, f in result.kits[name].items()})


def assemble(ctx: BundleContext, kit: Mapping[str, Entry]) -> Bundle:
    """Kit + README.md + run.sh + doctor.sh and doctor/ (+ k8s/ for a site, submit_job.py for an admin) +
    SHA256SUMS, as a tar.gz."""
    from fedgen.provision import KitFile

    p = ctx.participant
    kit_files = sorted(kit)
    extra: dict[str, Entry] = {}
    if p.kind == "site":
        extra["README.md"] = Entry(texts.site_readme(ctx, kit_files), FILE_MODE)
        kit_for_k8s = {path: KitFile(e.data, e.mode) for path, e in kit.items()}
        for path, data in k8s.site_manifests(ctx, kit_for_k8s).items():
            extra[path] = Entry(data, FILE_MODE)
    else:
        extra["README.md"] = Entry(texts.admin_readme(ctx, kit_files), FILE_MODE)
        extra["submit_job.py"] = Entry(texts.submit_job_py(ctx), EXEC_MODE)
    extra["run.sh"] = Entry(texts.run_sh(ctx), EXEC_MODE)
    extra[texts.DOCTOR_SH] = Entry(texts.doctor_sh(ctx), EXEC_MODE)
    for path, data in doctor_files().items():
        extra[path] = Entry(data, FILE_MODE)
    clash = sorted(set(extra) & set(kit))
    if clash:
        raise ExternalError(f"the kit of {p.name} already holds {', '.join(clash)}; cannot add fedgen's files")
    inner = {**kit, **extra}
    _check_single_key(p.name, inner)
    inner[texts.CHECKSUMS] = Entry(texts.checksums({path: e.data for path, e in inner.items()}), FILE_MODE)
    files = {f"{p.name}/{path}": entry for path, entry in sorted(inner.items())}
    # The admin console uploads from and downloads to transfer/ (fed_admin.json); ship it, empty.
    empty = (f"{p.name}/transfer",) if p.kind == "admin" else ()
    archive = tar_gz(files, empty_dirs=empty)
    return Bundle(ctx.federation.name, p.name, p.kind, MappingProxyType(files), empty, archive, sha256_hex(archive))


def doctor_files() -> dict[str, bytes]:
    """The connectivity doctor as shipped in bundles: the modules of fedgen.bundle.doctor, byte for byte, in
    the folder doctor/ (bundle path -> source)."""
    package = resources.files("fedgen.bundle.doctor")
    modules = sorted(entry.name for entry in package.iterdir() if entry.name.endswith(".py"))
    return {f"{texts.DOCTOR_DIR}/{name}": package.joinpath(name).read_bytes() for name in modules}


def _check_single_key(name: str, files: Mapping[str, Entry]) -> None:
    """Exactly one private key (the participant's own), only at startup/client.key, owner-only."""
    holders = sorted(path for path, e in files.items() if KEY_MARKER in e.data or path.endswith(".key"))
    if holders != ["startup/client.key"] or files["startup/client.key"].mode != 0o600:
        raise ExternalError(f"the bundle of {name} would hold private keys in {', '.join(holders) or 'no file'}; refusing")


def write_bundle(bundle: Bundle, out: Path | None = None, *, repo: Path = Path(".")) -> WrittenBundle:
    """Write the archive (0600, atomically, never through a symlink) and `<out>.sha256` beside it; by default
    to ~/fedgen-bundles/<federation>/<name>.tar.gz. Refused before anything is written when the path lies in a
    repository and git would not ignore it (fedgen.bundle.destination)."""
    path = out if out is not None else default_out(bundle.federation, bundle.name)
    checksum_path = path.with_name(path.name + ".sha256")
    for p in (path, checksum_path):
        if p.is_symlink():
            raise InputError(f"{p}: is a symbolic link; refusing to write through it")
    check_outside_repository(path, repo)
    if out is None:
        prepare_default(path)
    write_atomic(path, bundle.archive, mode=ARCHIVE_MODE)
    write_atomic(checksum_path, f"{bundle.sha256}  {path.name}\n".encode(), mode=CHECKSUM_FILE_MODE)
    return WrittenBundle(path, checksum_path, bundle.sha256)
