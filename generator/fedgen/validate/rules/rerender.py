"""FG1xx: the tree against what its specs render (fedgen.validate.rerender), not against the ledgers' word.

A pull request can edit a rendered file and recompute its digest in .fedgen/owned/*.json; it cannot change
what the committed spec renders without changing the spec, which the reviewer sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fedgen.validate.docdiff import describe, differences, fields, show
from fedgen.validate.finding import ERROR
from fedgen.validate.k8s import CONTAINER_LISTS
from fedgen.validate.model import Model, RepoFile, identity, is_object, ref_of
from fedgen.validate.rerender import owned_folder
from fedgen.validate.rule import Hit, Rule, at
from fedgen.validate.rules.ledger import line_of_text
from fedgen.validate.yamlsource import YamlDoc, escape, parse_file, pointer

MAX_PER_FILE = 20  # differences reported per file; one more finding counts the rest
SPEC_RENDERS = "the spec renders"


def _first_different_line(text: str, expected: str) -> int:
    for number, (a, b) in enumerate(zip(text.splitlines(), expected.splitlines()), start=1):
        if a != b:
            return number
    return min(len(text.splitlines()), len(expected.splitlines())) + 1


def _file_hits(path: str, expected: bytes, repo_file: RepoFile) -> Iterator[Hit]:
    if repo_file.text is None:
        yield at(path, None, "differs from what its spec renders (the file is binary or larger than validate reads)")
        return
    if repo_file.parse_error:
        yield at(path, repo_file.parse_error_line, f"differs from what its spec renders and does not parse ({repo_file.parse_error})")
        return
    text = expected.decode()
    found = differences(parse_file(path, text).docs, repo_file.docs, SPEC_RENDERS)
    if not found:
        line = _first_different_line(repo_file.text, text)
        yield at(path, line, "differs from what its spec renders in layout, comments or document order only")
        return
    for diff in found[:MAX_PER_FILE]:
        yield at(path, diff.line, f"{diff.pointer or '/'}: {diff.message}", pointer=diff.pointer, ref=diff.ref)
    if len(found) > MAX_PER_FILE:
        yield at(path, None, f"{len(found) - MAX_PER_FILE} more differences from what its spec renders", pointer="/...")


def rendered_file_differs(model: Model) -> Iterator[Hit]:
    """Every file the specs render (certificates and ciphertext as committed) equals the repo's, byte for byte."""
    for path, data in sorted(model.rerender.files.items()):
        repo_file = model.files.get(path)
        if repo_file is None:  # FG101 (listed) or FG121 (not listed) says so
            continue
        if repo_file.text is not None and repo_file.text.encode() == data:
            continue
        yield from _file_hits(path, data, repo_file)


def ledger_record_differs(model: Model) -> Iterator[Hit]:
    """A ledger records what its spec renders: name, files, contributions and shared files."""
    rendered = model.rerender
    for ledger in model.ledgers:
        want = rendered.ledgers.get(ledger.path)
        if want is None:
            continue
        where = ledger.path
        if ledger.federation != want.federation or where != f".fedgen/owned/{want.federation}.json":
            yield at(
                where,
                line_of_text(model, where, '"federation"'),
                f"records federation {show(ledger.federation)}; its spec names {show(want.federation)} (.fedgen/owned/{want.federation}.json)",
                pointer="/federation",
            )
        for path in sorted(set(want.files) - set(ledger.files)):
            yield at(where, None, f"does not list {path}, which its spec renders", pointer=pointer("files", path))
        for path in sorted(set(ledger.files) - set(want.files)):
            yield at(where, line_of_text(model, where, f'"{path}"'), f"lists {path}, which its spec does not render", pointer=pointer("files", path))
        recorded = {"contributions": list(ledger.contributions)}
        for ptr, expected, actual in list(fields({"contributions": list(want.contributions)}, recorded))[:MAX_PER_FILE]:
            yield at(where, line_of_text(model, where, '"contributions"'), f"{ptr}: {describe(expected, actual, 'its spec contributes')}", pointer=ptr)
        for path in sorted(set(want.shared) - set(ledger.shared)):
            yield at(where, None, f"does not list shared file {path}, which its spec feeds", pointer=pointer("shared", path))
        if not rendered.errors:
            for path in sorted(set(ledger.shared) - set(rendered.files)):
                yield at(where, line_of_text(model, where, f'"{path}"'), f"lists shared file {path}, which no spec renders", pointer=pointer("shared", path))


def owned_folder_file_unlisted(model: Model) -> Iterator[Hit]:
    rendered = model.rerender
    listed = {p for ledger in model.ledgers for p in ledger.owned} | set(rendered.files)
    folders = set(rendered.folders)
    for path in sorted(model.files):
        folder = owned_folder(path)
        if folder in folders and path not in listed:
            yield at(path, 1, f"{folder}/ belongs to fedgen, but no ledger lists this file and no spec renders it")


def _checked_docs(model: Model) -> Iterator[YamlDoc]:
    folders = set(model.rerender.checked_folders)
    for path in sorted(model.files):
        if owned_folder(path) in folders:
            yield from model.files[path].docs


def owned_folder_kind_foreign(model: Model) -> Iterator[Hit]:
    kinds = model.rerender.kinds
    for doc in _checked_docs(model):
        if is_object(doc.data) and identity(doc.data)[:2] not in kinds:
            kind = identity(doc.data)[1]
            yield at(doc.path, doc.line, f"a {show(kind)} in a folder fedgen owns: no spec here renders that kind", ref=ref_of(doc.data))


def _images(value: Any) -> Iterator[tuple[str, Any]]:
    """(pointer, image) of every container of any pod spec inside an object (a walk without recursion:
    repo files may nest deeply)."""
    todo: list[tuple[Any, str]] = [(value, "")]
    while todo:
        node, ptr = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            child = f"{ptr}/{escape(key)}"
            if key in CONTAINER_LISTS and isinstance(item, list):
                for i, c in enumerate(item):
                    if isinstance(c, dict) and "image" in c:
                        yield f"{child}/{i}/image", c["image"]
            todo.append((item, child))


def image_not_from_spec(model: Model) -> Iterator[Hit]:
    images = model.rerender.images
    for doc in _checked_docs(model):
        if not is_object(doc.data):
            continue
        ref = ref_of(doc.data)
        if identity(doc.data)[1] == "Kustomization" and doc.data.get("images"):
            yield at(doc.path, doc.line_of("/images"), "overrides container images; fedgen's images come from spec.nvflare.image", pointer="/images", ref=ref)
        for ptr, image in sorted(_images(doc.data)):
            if image not in images:
                yield at(doc.path, doc.line_of(ptr), f"image {show(image)} is not the spec's ({', '.join(sorted(images))})", pointer=ptr, ref=ref)


def rerender_failed(model: Model) -> Iterator[Hit]:
    for path, reason in sorted(model.rerender.errors.items()):
        yield at(path, 1, f"its spec cannot be rendered again to check the tree: {reason}")


RULES = (
    Rule(
        "FG120",
        "rendered-file-differs",
        ERROR,
        "Every rendered file is what its committed spec renders (certificates and ciphertext aside), whatever the ledger's digests say.",
        "Change the spec and run fedgen render instead of editing rendered files; restore the file with fedgen render.",
        rendered_file_differs,
    ),
    Rule(
        "FG121",
        "ledger-record-differs",
        ERROR,
        "Each ledger records exactly the files and shared-file contributions its spec renders.",
        "Run fedgen render with the spec to rewrite the ledger; never edit .fedgen/owned/*.json by hand.",
        ledger_record_differs,
    ),
    Rule(
        "FG122",
        "owned-folder-file-unlisted",
        ERROR,
        "Folders fedgen renders (tenants/<tenant>/, clusters/<cluster>/) hold only files a ledger lists.",
        "Move the file out of the folder fedgen owns, or delete it.",
        owned_folder_file_unlisted,
    ),
    Rule(
        "FG123",
        "owned-folder-kind-foreign",
        ERROR,
        "Folders fedgen renders hold only kinds of object fedgen renders there.",
        "Remove the object; apply objects fedgen does not render from a folder of your own.",
        owned_folder_kind_foreign,
    ),
    Rule(
        "FG124",
        "image-not-from-spec",
        ERROR,
        "Every container image in folders fedgen renders is the spec's spec.nvflare.image.",
        "Change spec.nvflare.image and run fedgen render.",
        image_not_from_spec,
    ),
    Rule(
        "FG125",
        "rerender-failed",
        ERROR,
        "Each ledger's spec can be rendered again without the state, so the tree can be checked against it.",
        "Fix what the message names (the spec, or the nvflare installation validate runs with).",
        rerender_failed,
    ),
)
