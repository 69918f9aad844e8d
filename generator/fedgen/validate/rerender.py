"""What the committed specs render, without the state: validate's proof that no rendered file was edited.

The ledgers (.fedgen/owned/*.json) come with the pull request, so their digests and recorded contributions
prove nothing. Each ledger's spec is rendered again with render's own pure functions:

- NVFlare's kit files that need no key (fed_server.json, local/*.default, ...) come from NVFlare itself
  (fedgen.provision.static), in a worker process started before they are needed.
- What needs the state (certificates, private keys, SealedSecret ciphertext) cannot be made here. A first
  render with a stand-in token for each such input shows where each lands in the tree; the values found at
  those places in the repo are taken as those inputs, and the second render, made with them, must equal the
  repo's files byte for byte. What derives from them (the kit-digest annotation) is so checked as well; the
  certificates themselves are left to the consistency rules (FG6xx) and to `fedgen render --check`.
- The shared files (sync root kustomizations, bootstrap, tfvars) are recomputed from the contributions the
  specs make, never from those the ledgers record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from fedgen.validate.model import LedgerExpectation, RepoFile, RepoLedger, Rerender, SpecInfo, identity, is_object
from fedgen.validate.yamlsource import YamlDoc, escape, load_all_plain

if TYPE_CHECKING:
    from fedgen.ledger import Contribution
    from fedgen.render.serialize import Document
    from fedgen.spec import Federation

Kits = dict[str, dict[str, bytes]]  # participant -> kit path -> bytes
Sealed = dict[tuple[str, str], dict[str, str]]  # (namespace, name) -> data key -> ciphertext
Kinds = frozenset[tuple[str, str]]  # (group, kind)
STAND_IN = "fedgen-stand-in:"
OWNED_ROOTS = ("tenants", "clusters")


def owned_folder(path: str) -> str | None:
    """tenants/<tenant> or clusters/<cluster> for a file below one: the folders fedgen owns whole."""
    parts = path.split("/")
    return f"{parts[0]}/{parts[1]}" if len(parts) > 2 and parts[0] in OWNED_ROOTS else None


def _folders(paths: Any) -> set[str]:
    return {f for f in map(owned_folder, paths) if f is not None}


def _stand_ins(fed: Federation, static: Kits) -> tuple[Kits, Sealed]:
    """Render inputs with a token in place of every certificate, key and ciphertext."""
    from fedgen.provision.static import certificate_files
    from fedgen.render.tree import sealed_keys

    kits: Kits = {}
    for name, files in static.items():
        kits[name] = {**files, **{p: f"{STAND_IN}kit:{name}:{p}".encode() for p in certificate_files(name == fed.server.name)}}
    sealed: Sealed = {}
    for k in sealed_keys(fed):
        sealed.setdefault((k.namespace, k.name), {})[k.key] = f"{STAND_IN}sealed:{k.namespace}:{k.name}:{k.key}"
    return kits, sealed


def _tokens(value: Any, ptr: str) -> Iterator[tuple[str, str]]:
    """(JSON pointer, token) of every stand-in in a rendered object."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tokens(item, f"{ptr}/{escape(key)}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tokens(item, f"{ptr}/{i}")
    elif isinstance(value, str) and value.startswith(STAND_IN):
        yield ptr, value


def resolve(data: Any, ptr: str) -> Any:
    """The value at a JSON pointer, or None."""
    for token in ptr.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def counterpart(expected: Any, index: int, actual: tuple[YamlDoc, ...]) -> YamlDoc | None:
    """The repo document matching a rendered one: the object of the same identity, else the same position."""
    if is_object(expected):
        wanted = identity(expected)
        return next((d for d in actual if is_object(d.data) and identity(d.data) == wanted), None)
    return actual[index] if index < len(actual) else None


def _harvest(documents: Mapping[str, Document], files: Mapping[str, RepoFile]) -> dict[str, str]:
    """token -> the repo's value where the first render put that token."""
    found: dict[str, str] = {}
    for path, document in documents.items():
        repo_file = files.get(path)
        actual = repo_file.docs if repo_file is not None else ()
        for index, obj in enumerate(document if isinstance(document, list) else [document]):
            doc = counterpart(obj, index, actual)
            for ptr, token in _tokens(obj, ""):
                value = resolve(doc.data, ptr) if doc is not None else None
                if isinstance(value, str):
                    found.setdefault(token, value)
    return found


def render_federation(fed: Federation, spec_name: str, static: Kits, files: Mapping[str, RepoFile]) -> tuple[dict[str, bytes], Kinds]:
    """The files this federation owns alone, with the repo's certificates and ciphertext in place, and the
    kinds of object they hold (read off the rendered objects: no need to parse the files again)."""
    from fedgen.render.serialize import dump_file
    from fedgen.render.tree import RenderInput, render_documents

    kits, sealed = _stand_ins(fed, static)
    found = _harvest(render_documents(RenderInput(fed, spec_name, kits, sealed)), files)

    def put(value: str) -> str:
        return found.get(value, value)

    kits = {name: {p: put(d.decode()).encode() if d.startswith(STAND_IN.encode()) else d for p, d in kit.items()} for name, kit in kits.items()}
    sealed = {where: {k: put(v) for k, v in data.items()} for where, data in sealed.items()}
    documents = render_documents(RenderInput(fed, spec_name, kits, sealed))  # what render_tree serializes
    objects = [o for path, d in documents.items() if path.endswith((".yaml", ".yml")) for o in (d if isinstance(d, list) else [d])]
    kinds = frozenset(identity(o)[:2] for o in objects if is_object(o))
    return {path: dump_file(document, spec_name=spec_name) for path, document in documents.items()}, kinds


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _recorded(ledger: RepoLedger) -> list[Contribution]:
    """A ledger's own record of its contributions, for a federation whose spec cannot be rendered."""
    try:
        return ledger.record.recorded_contributions() if ledger.record else []
    except Exception:  # noqa: BLE001 - an old or forged record: the ledger rules report it
        return []


def _kinds(files: Mapping[str, bytes]) -> Kinds:
    kinds = set()
    for path, data in files.items():
        if path.endswith((".yaml", ".yml")):
            for doc in load_all_plain(data.decode()):
                if is_object(doc):
                    kinds.add(identity(doc)[:2])
    return frozenset(kinds)


def rerender(files: Mapping[str, RepoFile], ledgers: tuple[RepoLedger, ...], specs: Mapping[str, SpecInfo], static: Mapping[str, Kits | str]) -> Rerender:
    """Render every ledger's spec again (static: NVFlare's static kits per spec path, or why there are none)."""
    from fedgen.render.shared import contributions, shared_files

    rendered: dict[str, bytes] = {}
    expected: dict[str, LedgerExpectation] = {}
    errors: dict[str, str] = {}
    feeds: list[Contribution] = []
    folders: set[str] = set()
    unchecked: set[str] = set()  # folders of federations not rendered again
    images: set[str] = set()
    kinds: set[tuple[str, str]] = set()
    for ledger in ledgers:
        if ledger.error is not None:
            continue
        folders |= _folders(ledger.owned)
        info = specs.get(ledger.spec) if ledger.spec else None
        if info is None or info.federation is None:  # FG105/FG106 say why
            unchecked |= _folders(ledger.owned)
            feeds += _recorded(ledger)
            continue
        fed, spec_name = info.federation, info.path
        kits = static.get(spec_name, "no NVFlare kit files were made for it")
        try:
            if isinstance(kits, str):
                raise ValueError(f"NVFlare cannot make its kit files: {kits}")
            own, own_kinds = render_federation(fed, spec_name, kits, files)
            mine = contributions(fed, spec_name)
            own_shared = shared_files(mine)
        except Exception as exc:  # noqa: BLE001 - a hostile spec or kit: a finding, never a traceback
            errors[ledger.path] = " ".join(str(exc).split()) or type(exc).__name__
            unchecked |= _folders(ledger.owned)
            feeds += _recorded(ledger)
            continue
        rendered.update(own)
        kinds |= own_kinds
        feeds += mine
        images.add(fed.image)
        folders |= _folders([*own, *own_shared])
        expected[ledger.path] = LedgerExpectation(
            federation=fed.name,
            files=tuple(sorted(own)),
            contributions=tuple(_as_json([c.to_json() for c in mine])),
            shared=tuple(sorted(own_shared)),
        )
    try:
        shared = shared_files(feeds)
        rendered.update(shared)
        kinds |= _kinds(shared)
    except Exception as exc:  # noqa: BLE001 - colliding specs (InputError) or a forged record of a broken one
        for path in expected:
            errors[path] = f"the shared files cannot be recomputed from the specs: {' '.join(str(exc).split())}"
        unchecked |= {f for f in folders if f.startswith("clusters/")}
    return Rerender(
        files=rendered,
        ledgers=expected,
        errors=errors,
        folders=tuple(sorted(folders)),
        checked_folders=tuple(sorted(folders - unchecked)),
        kinds=frozenset(kinds),
        images=frozenset(images),
    )
