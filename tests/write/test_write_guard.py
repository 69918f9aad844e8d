"""render and remove cannot be steered by repository content: forged ledgers and journals, symbolic links and
hand edits stop them (exit 2, one line) before anything on disk changes, the state and files outside the
repository included."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedgen.ledger.guard import path_problem
from tests.support import fedgen_cli, render_spec

SpecWriter = Callable[..., Path]
LEDGER = ".fedgen/owned/genomics.json"
STATE = ".fedgen/state/genomics/state.json"
SERVICE = "tenants/fl-genomics/nvflare-flserver/service.yaml"


def _disk(root: Path) -> dict[str, tuple[str, Any]]:
    """Everything under root, links not followed: files (bytes, mode), folders (mode), links (target)."""
    out: dict[str, tuple[str, Any]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = os.lstat(path)
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(info.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                out[rel] = ("dir", info.st_mode)
            else:
                out[rel] = ("file", (path.read_bytes(), info.st_mode))
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _edit_ledger(repo: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = repo / LEDGER
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _refused(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # one clear line
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("right_digest", [False, True])
def test_a_forged_ledger_entry_for_the_state_is_refused(rendered: tuple[Path, Path], right_digest: bool) -> None:
    spec, repo = rendered
    state = (repo / STATE).read_bytes()
    _edit_ledger(repo, lambda d: d["files"].__setitem__(STATE, _sha(state) if right_digest else "0" * 64))
    before = _disk(repo.parent)
    for result in (render_spec(spec), fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), render_spec(spec)):
        _refused(result, LEDGER, repr(STATE), "inside .fedgen/")
    assert _disk(repo.parent) == before
    assert (repo / STATE).read_bytes() == state


@pytest.mark.parametrize(
    "forged",
    [
        "../outside/victim.yaml",
        "/etc/passwd",
        ".git/config",
        ".FEDGEN/state/genomics/state.json",
        "tenants/./x.yaml",
        "",
    ],
)
def test_ledger_paths_are_checked_when_read(rendered: tuple[Path, Path], forged: str) -> None:
    spec, repo = rendered
    _edit_ledger(repo, lambda d: d["shared"].append(forged))
    before = _disk(repo.parent)
    _refused(render_spec(spec), LEDGER, "invalid shared entry")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), LEDGER)
    assert _disk(repo.parent) == before


def test_a_forged_entry_with_the_right_digest_cannot_delete_the_repos_own_files(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    readme = repo / "README.md"
    readme.write_bytes(b"# the operator's repository\n")
    _edit_ledger(repo, lambda d: d["files"].__setitem__("README.md", _sha(readme.read_bytes())))
    before = _disk(repo.parent)
    _refused(render_spec(spec), LEDGER, "'README.md'", "outside the folders renders write")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), LEDGER)
    assert _disk(repo.parent) == before


def test_a_forged_contribution_cannot_write_the_state(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered

    def forge(d: dict[str, Any]) -> None:
        d["contributions"][0]["tfvars_file"] = STATE
        d["shared"].append(STATE)

    _edit_ledger(repo, forge)
    before = _disk(repo.parent)
    _refused(render_spec(spec), LEDGER, repr(STATE))
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), LEDGER, repr(STATE))
    assert _disk(repo.parent) == before


def test_a_ledger_entry_behind_a_symlinked_folder_deletes_nothing_outside(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    outside = repo.parent / "outside"
    outside.mkdir()
    victim = outside / "victim.yaml"
    victim.write_bytes(b"precious\n")
    (repo / "tenants/linked").symlink_to(outside, target_is_directory=True)
    # The right digest: only the link stands between the render and the file.
    _edit_ledger(repo, lambda d: d["files"].__setitem__("tenants/linked/victim.yaml", _sha(b"precious\n")))
    before = _disk(repo.parent)
    _refused(render_spec(spec), "tenants/linked/victim.yaml", "lies behind tenants/linked", "symbolic link")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), "symbolic link")
    assert _disk(repo.parent) == before
    assert victim.read_bytes() == b"precious\n"


def test_a_symlinked_parent_folder_on_a_create_writes_nothing(write_spec: SpecWriter) -> None:
    spec = write_spec()
    repo = spec.parent.parent
    outside = repo.parent / "outside"
    outside.mkdir()
    (repo / "tenants").symlink_to(outside, target_is_directory=True)
    before = _disk(repo.parent)
    _refused(render_spec(spec), "lies behind tenants, which is a symbolic link")
    assert _disk(repo.parent) == before
    assert not any(outside.iterdir())


def test_a_symlinked_fedgen_folder_is_refused(write_spec: SpecWriter) -> None:
    spec = write_spec()
    repo = spec.parent.parent
    outside = repo.parent / "outside"
    outside.mkdir()
    (repo / ".fedgen").symlink_to(outside, target_is_directory=True)
    before = _disk(repo.parent)
    _refused(render_spec(spec), ".fedgen", "symbolic link")
    assert _disk(repo.parent) == before


def test_a_hand_edited_owned_file_is_not_overwritten(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    with (repo / SERVICE).open("a") as fh:
        fh.write("# a reviewer's note\n")
    write_spec(lambda d: d["spec"]["server"].__setitem__("ports", {"fl": 9202, "admin": 9203}))  # the render updates it
    before = _disk(repo.parent)
    _refused(render_spec(spec), SERVICE, "changed since fedgen wrote it", "git checkout --")
    _refused(fedgen_cli("render", str(spec), "--repo", str(repo), "--check"), SERVICE)
    assert _disk(repo.parent) == before
    # Restored, the render goes ahead.
    (repo / SERVICE).write_bytes((repo / SERVICE).read_bytes().replace(b"# a reviewer's note\n", b""))
    assert render_spec(spec).exit_code == 0


def test_a_hand_edited_owned_file_is_not_deleted(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    gateway = repo / "clusters/gke-eu/istio-ingress/fl-genomics"
    edited = sorted(p for p in gateway.iterdir() if p.suffix == ".yaml")[0]
    edited.write_bytes(edited.read_bytes() + b"# kept by hand\n")
    write_spec(lambda d: d["spec"]["server"].__setitem__("exposure", "loadbalancer"))  # the render deletes the gateway files
    before = _disk(repo.parent)
    _refused(render_spec(spec), edited.relative_to(repo).as_posix(), "changed since fedgen wrote it")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), edited.relative_to(repo).as_posix())
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--check"), edited.relative_to(repo).as_posix())
    assert _disk(repo.parent) == before


def test_a_hand_edited_shared_file_is_not_overwritten(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    root = repo / "clusters/gke-eu/kustomization.yaml"
    root.write_bytes(root.read_bytes() + b"  - ../../elsewhere\n")
    before = _disk(repo.parent)
    _refused(render_spec(spec), "clusters/gke-eu/kustomization.yaml", "changed since fedgen wrote it")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), "clusters/gke-eu/kustomization.yaml")
    assert _disk(repo.parent) == before


@pytest.mark.parametrize(
    "journal",
    [
        {"moves": [], "deletes": ["../outside/victim.yaml"], "staging": ".fedgen/tmp/render-1"},
        {"moves": [], "deletes": [STATE], "staging": ".fedgen/tmp/render-1"},
        {"moves": [["../outside/victim.yaml", SERVICE]], "deletes": [], "staging": ".fedgen/tmp/render-1"},
        {"moves": [[".fedgen/tmp/render-1/000000", STATE]], "deletes": [], "staging": ".fedgen/tmp/render-1"},
        {"moves": [], "deletes": [], "staging": "../outside"},
    ],
)
def test_a_forged_journal_never_moves_or_deletes_outside_or_into_the_state(rendered: tuple[Path, Path], journal: dict[str, Any]) -> None:
    spec, repo = rendered
    outside = repo.parent / "outside"
    outside.mkdir()
    (outside / "victim.yaml").write_bytes(b"precious\n")
    staged = repo / ".fedgen/tmp/render-1"
    staged.mkdir(parents=True)
    (staged / "000000").write_bytes(b"{}\n")
    (repo / ".fedgen/journal.json").write_text(json.dumps(journal))
    before = _disk(repo.parent)
    _refused(render_spec(spec), ".fedgen/journal.json", "fedgen did not write this journal")
    _refused(fedgen_cli("remove", "genomics", "--repo", str(repo), "--yes"), ".fedgen/journal.json")
    assert _disk(repo.parent) == before


def test_path_rules() -> None:
    allowed = ["tenants/a/b.yaml", "clusters/x/kustomization.yaml", "terraform/fedgen.auto.tfvars.json"]
    assert [path_problem(p) for p in allowed] == [None] * len(allowed)
    refused = [
        "",
        "/abs",
        "tenants/../b",
        "tenants//b",
        "./tenants/a",
        "tenants/a/",
        ".git/hooks/x",
        "tenants/.git/config",
        ".fedgen/owned/x.json",
        ".Fedgen/state/s.json",
        "tenants/a\0b",
        7,
        "README.md",
        "generator/fedgen/api.py",
        ".github/workflows/ci.yaml",
    ]
    assert all(path_problem(p) for p in refused)
    assert path_problem(".fedgen/owned/x.json", internal=lambda p: p == ".fedgen/owned/x.json") is None


def test_owned_folders_cover_every_file_a_render_owns(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    """The folders checked for links before the state is locked are every folder the render writes into."""
    from fedgen.render.tree import owned_folders
    from fedgen.spec import load_federation
    from fedgen.spec.sealing_certificate import fingerprint, load_certificate

    def site_cluster(d: dict[str, Any]) -> None:
        d["spec"]["clusters"].append({"name": "gke-site", "projectId": "site-proj", "region": "europe-west1", "sealing": {"certificate": "sealing.pem"}})
        d["spec"]["sites"][1]["cluster"] = "gke-site"
        d["spec"]["server"]["externalAddress"] = "203.0.113.10"

    seen: set[str] = set()
    for edit in (None, lambda d: d["spec"]["server"].__setitem__("exposure", "loadbalancer"), site_cluster):
        spec = write_spec(edit)
        repo = spec.parent.parent
        cert = fingerprint(load_certificate((spec.parent / "sealing.pem").read_bytes(), origin="cert").sha256)
        result = fedgen_cli("render", str(spec), "--repo", str(repo), "--accept-sealing-cert", cert)
        assert result.exit_code == 0, result.output
        folders = set(owned_folders(load_federation(spec)))
        owned = json.loads((repo / LEDGER).read_text())["files"]
        assert owned and {path.rpartition("/")[0] for path in owned} == folders
        seen |= folders
    assert {"clusters/gke-site/sites/site-b", "clusters/gke-eu/istio-ingress/fl-genomics"} <= seen
