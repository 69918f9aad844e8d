"""The federation's root CA certificate: from the state, or from the server kit the render committed.

Only the certificate is read here (never the key): it is what sites check out of band, and what every
approval must chain to. The rendered copy is `rootCA.pem` in the ConfigMap nvflare-<server>-startup of
tenants/<tenant>/nvflare-<server>/configmaps.yaml: exactly what the server trusts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from fedgen.enroll.fingerprints import fingerprint
from fedgen.errors import ExternalError, InputError
from fedgen.render.layout import server_base_dir, startup_configmap_name
from fedgen.spec.model import Federation
from fedgen.state.document import StateDocument
from fedgen.untrusted import check_yaml_depth

ROOT_CERT = "root_cert"  # NVFlare's cert.json keys, as the state keeps them
ROOT_KEY = "root_pri_key"
ROOTCA_ITEM = "rootCA.pem"


@dataclass(frozen=True)
class RootCA:
    pem: bytes
    source: str  # where it came from, for messages
    fingerprint: str


def configmap_path(fed: Federation) -> str:
    return f"{server_base_dir(fed)}/configmaps.yaml"


def _valid_pem(pem: bytes, origin: str) -> bytes:
    try:
        x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise InputError(f"{origin}: the root CA certificate does not parse ({exc})") from None
    return pem


def from_document(document: StateDocument, origin: str) -> bytes | None:
    pem = document.nvflare_cert.get(ROOT_CERT)
    if not pem:
        return None
    return _valid_pem(pem.encode() if isinstance(pem, str) else bytes(pem), origin)


def from_repo(repo: Path, fed: Federation) -> tuple[bytes, str] | None:
    """(rootCA.pem, repo path) from the rendered startup ConfigMap; None when the repo has no such file."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    rel = configmap_path(fed)
    path = repo / rel
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{rel}: cannot be read ({exc})") from None
    try:
        check_yaml_depth(text)
        docs = [d for d in YAML(typ="safe", pure=True).load_all(text) if isinstance(d, dict)]
    except (YAMLError, ValueError) as exc:
        raise InputError(f"{rel}: not valid YAML ({str(exc).splitlines()[0]})") from None
    name = startup_configmap_name(fed)
    for doc in docs:
        meta = doc.get("metadata") or {}
        if doc.get("kind") == "ConfigMap" and isinstance(meta, dict) and meta.get("name") == name:
            pem = (doc.get("data") or {}).get(ROOTCA_ITEM)
            if isinstance(pem, str) and pem:
                return _valid_pem(pem.encode(), rel), rel
    raise InputError(f"{rel}: no ConfigMap {name} with {ROOTCA_ITEM}; run fedgen render first")


def locate(fed: Federation, repo: Path, state: str | None) -> tuple[RootCA, list[str]]:
    """The root CA from the state when it can be read and holds one, else from the rendered ConfigMap.

    Both present and different is an InputError (the repo was not rendered from this state). Returns the
    root and notes (why the state was not used).
    """
    from fedgen.state import federation_store

    notes: list[str] = []
    state_pem = None
    description = state or "the default state"
    try:
        store = federation_store(fed, state, repo)
        description = store.description
        document = store.load()
    except ExternalError as exc:
        notes.append(f"state not reachable ({exc}); using the rendered server kit")
    else:
        document.require_project(fed.name, description)
        state_pem = from_document(document, f"state {description}")
        if state_pem is None:
            notes.append(f"state {description} holds no root CA; using the rendered server kit")
    rendered = from_repo(repo, fed)
    if state_pem is not None and rendered is not None and fingerprint(state_pem) != fingerprint(rendered[0]):
        raise InputError(
            f"the root CA in state {description} ({fingerprint(state_pem)}) differs from the one the server trusts in "
            f"{rendered[1]} ({fingerprint(rendered[0])}): render with this state and commit, or pass the right --state"
        )
    if state_pem is not None:
        return RootCA(state_pem, f"state {description}", fingerprint(state_pem)), notes
    if rendered is not None:
        pem, rel = rendered
        return RootCA(pem, f"{rel} (ConfigMap {startup_configmap_name(fed)}, as rendered)", fingerprint(pem)), notes
    raise InputError(
        f"no root CA for {fed.name}: the state ({description}) holds none and the repo has no {configmap_path(fed)}; "
        "run fedgen render first (or pass --repo / --state)"
    )
