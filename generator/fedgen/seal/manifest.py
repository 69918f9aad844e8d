"""The SealedSecret object: building it as kubeseal writes it, reading the encryptedData of one in the repo,
and hiding ciphertext in diffs.

The controller derives the decryption label from the annotations on the SealedSecret's *own* metadata
(``sealedsecrets.bitnami.com/namespace-wide`` / ``sealedsecrets.bitnami.com/cluster-wide``); kubeseal also
copies them onto ``spec.template.metadata``, and so does :func:`sealed_secret_manifest`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedgen.errors import InputError
from fedgen.seal.crypto import SCOPES, check_scope

API_VERSION = "bitnami.com/v1alpha1"
KIND = "SealedSecret"
ANNOTATION_NAMESPACE_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
ANNOTATION_CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"


def scope_annotations(scope: str) -> dict[str, str]:
    """The annotations kubeseal writes for ``scope`` (none for strict)."""
    if scope not in SCOPES:
        raise InputError(f"unknown sealing scope {scope!r} (expected one of: {', '.join(SCOPES)})")
    if scope == "namespace-wide":
        return {ANNOTATION_NAMESPACE_WIDE: "true"}
    if scope == "cluster-wide":
        return {ANNOTATION_CLUSTER_WIDE: "true"}
    return {}


def sealed_secret_manifest(
    *,
    name: str,
    namespace: str,
    scope: str,
    encrypted_data: Mapping[str, str],
    secret_type: str = "Opaque",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``bitnami.com/v1alpha1`` SealedSecret as plain dicts (ready for YAML/JSON dumping).

    Scope annotations go on the SealedSecret's own metadata (where the controller reads them to pick the
    decryption label) and, as kubeseal writes them, on ``spec.template.metadata`` too. No
    ``creationTimestamp`` anywhere.
    """
    check_scope(scope, namespace=namespace, name=name)
    annotations = scope_annotations(scope)

    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)

    template_metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        template_metadata["labels"] = {k: labels[k] for k in sorted(labels)}
    if annotations:
        template_metadata["annotations"] = dict(annotations)

    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "encryptedData": {k: encrypted_data[k] for k in sorted(encrypted_data)},
            "template": {"metadata": template_metadata, "type": secret_type},
        },
    }


def read_encrypted_data(path: Path) -> dict[str, str]:
    """encryptedData of the SealedSecret at path (empty when absent or unreadable): what a render may keep."""
    from ruamel.yaml import YAML

    if not path.is_file():
        return {}
    try:
        for doc in YAML(typ="safe", pure=True).load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SealedSecret":
                data = doc.get("spec", {}).get("encryptedData", {})
                return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except Exception:  # noqa: BLE001 - an unreadable file is simply re-sealed
        return {}
    return {}


_ENCRYPTED_DATA = re.compile(r"(?P<indent> *)encryptedData:\s*")
_ENTRY = re.compile(r"(?P<head> *[^\s:#][^:]*:[ \t]+)(?P<value>\S+)\s*")


def redact_ciphertext(text: str) -> str:
    """text with every value of an encryptedData block replaced by sha256:<first 16 hex of its digest>, so
    that diffs show which sealed values change without printing any ciphertext."""
    out: list[str] = []
    block: int | None = None  # indentation of the encryptedData key we are under
    for line in text.splitlines(keepends=True):
        if block is not None and line.strip() and len(line) - len(line.lstrip(" ")) <= block:
            block = None
        if block is not None:
            entry = _ENTRY.fullmatch(line)
            if entry:
                line = f"{entry['head']}sha256:{hashlib.sha256(entry['value'].encode()).hexdigest()[:16]}\n"
        elif (start := _ENCRYPTED_DATA.fullmatch(line)) is not None:
            block = len(start["indent"])
        out.append(line)
    return "".join(out)
