"""FG4xx: no secret in the clear anywhere in the repo, and SealedSecrets that the controller can unseal.

These rules read every file of the repo (not only what a sync root builds): a key in docs/ leaks as surely
as one in clusters/.
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from collections.abc import Iterator
from typing import Any

from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import as_dict
from fedgen.validate.model import Model, identity, is_object, ref_of
from fedgen.validate.rule import Hit, Rule, at, on
from fedgen.validate.yamlsource import YamlDoc, pointer

_BASE64ISH = re.compile(r"^[A-Za-z0-9+/=\s]+$")
_PEM_MARKER = b"PRIVATE KEY" + b"-----"
SEALED_GROUP, SEALED_KIND = "bitnami.com", "SealedSecret"
NAMESPACE_WIDE = "sealedsecrets.bitnami.com/namespace-wide"
CLUSTER_WIDE = "sealedsecrets.bitnami.com/cluster-wide"
RSA_CIPHERTEXT_BYTES = (256, 384, 512)  # RSA-2048, -3072, -4096
GCM_TAG_BYTES = 16


def _objects(model: Model, group: str, kind: str) -> Iterator[YamlDoc]:
    for doc in model.docs():
        if is_object(doc.data) and identity(doc.data)[:2] == (group, kind):
            yield doc


def plaintext_secret(model: Model) -> Iterator[Hit]:
    for doc in _objects(model, "", "Secret"):
        for key in ("data", "stringData"):
            if as_dict(doc.data.get(key)):
                yield at(doc.path, doc.line_of(f"/{key}"), f"a plaintext Secret ({key} in the clear) would be committed to git", f"/{key}", ref_of(doc.data))
                break
    for obj in model.objects():
        if obj.group == "" and obj.kind == "Secret" and obj.source is None and (as_dict(obj.data.get("data")) or as_dict(obj.data.get("stringData"))):
            yield on(obj, "", "the build generates a plaintext Secret (secretGenerator?) from files in the repo")


def private_key_in_file(model: Model) -> Iterator[Hit]:
    for path, repo_file in sorted(model.files.items()):
        for ordinal, key in enumerate(repo_file.keys):
            yield at(path, key.line, key.describe(), pointer=f"/key/{ordinal}")


def uninspectable_file(model: Model) -> Iterator[Hit]:
    for path, repo_file in sorted(model.files.items()):
        if repo_file.uninspectable:
            yield at(path, None, f"cannot be inspected for keys: {repo_file.uninspectable}")


MIN_ENCODED_KEY = 64  # shorter strings cannot be base64 of a private key (_decoded_key says None)


def _long_strings(value: Any) -> Iterator[tuple[str, str]]:
    """(JSON pointer, value) of every string of at least MIN_ENCODED_KEY characters under a mapping or list:
    iterative, with a pointer made only for those (a repo may hold megabytes of JSON, e.g. schemas/)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(item, str):
                if len(item) >= MIN_ENCODED_KEY:
                    yield pointer(*path, key), item
            elif isinstance(item, (dict, list)):
                stack.append((item, (*path, key)))


def _candidates(data: Any) -> Iterator[tuple[str, str]]:
    if isinstance(data, str):
        if len(data) >= MIN_ENCODED_KEY:
            yield "", data
    elif isinstance(data, (dict, list)):
        yield from _long_strings(data)


def _decoded_key(value: str) -> str | None:
    """'PEM' or 'DER' when the value is base64 of a private key."""
    if len(value) < MIN_ENCODED_KEY or not _BASE64ISH.match(value):
        return None
    compact = "".join(value.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if _PEM_MARKER in raw:
        return "PEM"
    if raw[:1] == b"\x30" and len(raw) > 100:
        from cryptography.hazmat.primitives import serialization

        try:
            serialization.load_der_private_key(raw, password=None)
            return "DER"
        except (ValueError, TypeError):
            return None
        except Exception:  # noqa: BLE001 - unsupported algorithms and the like: not a key we can tell
            return None
    return None


# Bytes that can stand for a character of a candidate in YAML/JSON source: the base64 alphabet, whitespace,
# and what escapes are spelt with (backslash, letters, digits, '_' of YAML's \_); anything non-ASCII too.
_CANDIDATE_BYTES = frozenset((string.ascii_letters + string.digits + "+/=\\_ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f").encode())
_RUN_TABLE = bytes(0x61 if (b in _CANDIDATE_BYTES or b >= 0x80) else 0x2E for b in range(256))
_RUN = b"a" * MIN_ENCODED_KEY


def may_hold_encoded_key(text: str, *, yaml: bool = True) -> bool:
    """False only when no string the file parses to can be base64 of a key: such a string has at least
    MIN_ENCODED_KEY characters of base64 and whitespace, and every one of them is spelt in the source by one or
    more bytes of _CANDIDATE_BYTES, contiguously (quotes, escapes, folding and indentation only add bytes).
    A YAML file with a tag ('!': !!binary is re-encoded when parsed, a tag may be spelt with %TAG or
    %-escapes) is always walked. Linear and in C."""
    if yaml and "!" in text:
        return True
    return _RUN in text.encode("utf-8", "surrogatepass").translate(_RUN_TABLE)


def encoded_private_key(model: Model) -> Iterator[Hit]:
    for path in sorted(model.files):
        repo_file = model.files[path]
        if not repo_file.docs or repo_file.text is None or not may_hold_encoded_key(repo_file.text, yaml=not path.endswith(".json")):
            continue
        for doc in repo_file.docs:
            ref = ref_of(doc.data) if is_object(doc.data) else None
            for ptr, value in _candidates(doc.data):
                form = _decoded_key(value)
                if form:
                    yield at(doc.path, doc.line_of(ptr), f"{ptr or '/'} is base64 of a {form} private key", ptr, ref)


def _sealed_values(doc: YamlDoc) -> Iterator[tuple[str, Any]]:
    for key, value in sorted(as_dict(as_dict(doc.data.get("spec")).get("encryptedData")).items(), key=lambda kv: str(kv[0])):
        yield pointer("spec", "encryptedData", key), value


def _decode_sealed(value: Any) -> tuple[bytes | None, str | None]:
    if not isinstance(value, str):
        return None, "is not a string"
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, "is not standard padded base64"
    if len(raw) < 2:
        return None, "is too short to hold a sealed value"
    size = int.from_bytes(raw[:2], "big")
    if len(raw) < 2 + size + GCM_TAG_BYTES:
        return None, f"is truncated: {len(raw)} bytes cannot hold a {size}-byte RSA ciphertext and a GCM tag"
    return raw, None


def sealed_value_malformed(model: Model) -> Iterator[Hit]:
    for doc in _objects(model, SEALED_GROUP, SEALED_KIND):
        for ptr, value in _sealed_values(doc):
            _, problem = _decode_sealed(value)
            if problem:
                yield at(doc.path, doc.line_of(ptr), f"encryptedData {ptr.rsplit('/', 1)[-1]} {problem}", ptr, ref_of(doc.data))


def sealed_key_size_mismatch(model: Model) -> Iterator[Hit]:
    for doc in _objects(model, SEALED_GROUP, SEALED_KIND):
        spec = model.spec_for(doc.path)
        expected = spec.key_bytes_for(doc.path) if spec else None
        for ptr, value in _sealed_values(doc):
            raw, problem = _decode_sealed(value)
            if raw is None or problem:
                continue
            size = int.from_bytes(raw[:2], "big")
            key = ptr.rsplit("/", 1)[-1]
            if expected is not None and size != expected:
                yield at(
                    doc.path,
                    doc.line_of(ptr),
                    f"encryptedData {key} was sealed for an RSA-{size * 8} key, but the sealing certificate {spec.path if spec else 'the spec'} names for it is RSA-{expected * 8}",
                    ptr,
                    ref_of(doc.data),
                )
            elif expected is None and size not in RSA_CIPHERTEXT_BYTES:
                yield at(
                    doc.path, doc.line_of(ptr), f"encryptedData {key} has a {size}-byte key ciphertext, not an RSA-2048/3072/4096 size", ptr, ref_of(doc.data)
                )


def _scope(annotations: dict[str, Any]) -> tuple[bool, bool]:
    return str(annotations.get(NAMESPACE_WIDE, "")).lower() == "true", str(annotations.get(CLUSTER_WIDE, "")).lower() == "true"


def _scope_name(namespace_wide: bool, cluster_wide: bool) -> str:
    return "cluster-wide" if cluster_wide else "namespace-wide" if namespace_wide else "strict"


def sealed_scope_annotations(model: Model) -> Iterator[Hit]:
    for doc in _objects(model, SEALED_GROUP, SEALED_KIND):
        ref = ref_of(doc.data)
        annotations = as_dict(as_dict(doc.data.get("metadata")).get("annotations"))
        nw, cw = _scope(annotations)
        if nw and cw:
            yield at(
                doc.path, doc.line_of("/metadata/annotations"), "both namespace-wide and cluster-wide scope annotations are set", "/metadata/annotations", ref
            )
            continue
        template_annotations = as_dict(as_dict(as_dict(as_dict(doc.data.get("spec")).get("template")).get("metadata")).get("annotations"))
        if (NAMESPACE_WIDE in template_annotations or CLUSTER_WIDE in template_annotations) and _scope(template_annotations) != (nw, cw):
            ptr = "/spec/template/metadata/annotations"
            yield at(
                doc.path,
                doc.line_of(ptr),
                f"template scope {_scope_name(*_scope(template_annotations))} differs from the SealedSecret's own {_scope_name(nw, cw)} (the controller reads its own)",
                ptr,
                ref,
            )
        spec = model.spec_for(doc.path)
        if spec is not None and spec.sealing_scope and model.owner_of(doc.path) is not None and spec.sealing_scope != _scope_name(nw, cw):
            yield at(
                doc.path,
                doc.line_of("/metadata"),
                f"scope annotations say {_scope_name(nw, cw)} but {spec.path} seals with scope {spec.sealing_scope}: the controller would use the wrong label and fail to unseal",
                "/metadata",
                ref,
            )


def sealed_template_identity(model: Model) -> Iterator[Hit]:
    for doc in _objects(model, SEALED_GROUP, SEALED_KIND):
        meta = as_dict(doc.data.get("metadata"))
        template = as_dict(as_dict(as_dict(doc.data.get("spec")).get("template")).get("metadata"))
        for key in ("name", "namespace"):
            if key in template and key in meta and template[key] != meta[key]:
                ptr = f"/spec/template/metadata/{key}"
                yield at(doc.path, doc.line_of(ptr), f"template {key} {template[key]!r} differs from the SealedSecret's {meta[key]!r}", ptr, ref_of(doc.data))


RULES = (
    Rule(
        "FG401",
        "plaintext-secret",
        ERROR,
        "No Secret with data in the clear is in the repo or generated by a build.",
        "Seal it (fedgen render seals the server key) or keep it out of git.",
        plaintext_secret,
    ),
    Rule(
        "FG402",
        "private-key-in-file",
        ERROR,
        "No file of the repo holds a private key: PEM or DER, in a file of any size, or inside a tar, zip, gzip, bzip2 or xz archive.",
        "Remove the key from the repo and its history, rotate it, and keep keys in the state (never committed).",
        private_key_in_file,
    ),
    Rule(
        "FG403",
        "encoded-private-key",
        ERROR,
        "No value in a YAML/JSON file is base64 of a private key.",
        "Remove the value and rotate the key; ship keys only as SealedSecrets.",
        encoded_private_key,
    ),
    Rule(
        "FG404",
        "sealed-value-malformed",
        ERROR,
        "SealedSecret values are padded base64 holding a length-prefixed RSA ciphertext and AES-GCM data.",
        "Re-seal the value (fedgen render, or kubeseal against the controller's certificate).",
        sealed_value_malformed,
    ),
    Rule(
        "FG405",
        "sealed-key-size-mismatch",
        ERROR,
        "SealedSecret values were sealed for the sealing certificate's key size.",
        "Re-seal with the certificate named by spec.sealing.certificate (kubeseal --fetch-cert).",
        sealed_key_size_mismatch,
    ),
    Rule(
        "FG409",
        "uninspectable-file",
        ERROR,
        "Every file of the repo can be inspected for keys: archives within bounds (depth, members, decompressed bytes), YAML/JSON within size and nesting bounds.",
        "Keep archives and generated data out of the GitOps repository (or make them smaller and flatter); a file validate cannot read to its end could hide a key.",
        uninspectable_file,
    ),
    Rule(
        "FG406",
        "sealed-scope-annotations",
        ERROR,
        "SealedSecret scope annotations are consistent with each other, the template and the spec.",
        "Set the scope only through spec.sealing.scope and re-render; never edit the annotations by hand.",
        sealed_scope_annotations,
    ),
    Rule(
        "FG407",
        "sealed-template-identity",
        ERROR,
        "A SealedSecret's template name/namespace equal its own.",
        "Make spec.template.metadata name and namespace match the SealedSecret (or drop them).",
        sealed_template_identity,
    ),
)
