"""fedgen.ledger: one format and one parser for every reader (render and remove, validate, the root-CA guard),
and a plan that takes what was rendered as data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fedgen.errors import InputError
from fedgen.ledger import Contribution, ledger_bytes, read_ledger_files, read_ledgers
from fedgen.ledger import read as ledger_read
from fedgen.write import RenderedFiles, make_plan

OWNED = ".fedgen/owned"
CONTRIBUTION = Contribution(
    federation="genomics",
    spec="spec/federation.yaml",
    cluster="gke-eu",
    tenant="fl-genomics",
    server="flserver",
    resources=("../../tenants/fl-genomics/overlays/gke-eu",),
    namespaces=("fl-genomics",),
    gateway_ports=(9102, 9103),
    gitops={"engine": "config-sync", "repo": "https://git.example.org/fl.git", "revision": "main"},
    platform="standalone",
    tfvars={},
)


def _ledger(repo: Path, name: str, doc: dict[str, Any] | bytes) -> None:
    (repo / OWNED).mkdir(parents=True, exist_ok=True)
    (repo / OWNED / f"{name}.json").write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())


def test_what_a_render_writes_every_reader_reads_back(tmp_path: Path) -> None:
    data = ledger_bytes("genomics", "spec/federation.yaml", {"tenants/fl-genomics/base/a.yaml": b"a"}, ["clusters/gke-eu/kustomization.yaml"], [CONTRIBUTION])
    _ledger(tmp_path, "genomics", data)
    [found] = read_ledger_files(tmp_path)
    checked = read_ledgers(tmp_path)["genomics"]
    assert found.error is None and found.ledger == checked
    assert checked.federation == checked.name == "genomics" and checked.spec == "spec/federation.yaml"
    assert checked.shared == ("clusters/gke-eu/kustomization.yaml",)
    assert checked.recorded_contributions() == [CONTRIBUTION]


def test_a_ledger_of_the_single_contribution_format_is_read_alike_by_render_and_validate(tmp_path: Path) -> None:
    """Validate used to read `contribution` (one record, an older format) and render and remove ignored it,
    so the two disagreed on what a shared file should hold."""
    _ledger(tmp_path, "genomics", {"federation": "genomics", "files": {}, "shared": [], "contribution": CONTRIBUTION.to_json()})
    [found] = read_ledger_files(tmp_path)
    assert found.ledger is not None and found.ledger.recorded_contributions() == [CONTRIBUTION]
    assert read_ledgers(tmp_path)["genomics"].recorded_contributions() == [CONTRIBUTION]


@pytest.mark.parametrize(
    ("doc", "validate_says"),
    [
        (b"[]", "TypeError"),
        (b'{"shared": []}', "KeyError: 'files'"),
        (b'{"files": {"a": 1}}', "files is not a mapping of path to digest"),
        (b'{"files": {}, "shared": "x"}', "shared is not a list of paths"),
        (b'{"files": {}, "contributions": {}}', "contributions is not a list"),
        (b"{", "JSONDecodeError"),
    ],
)
def test_a_malformed_ledger_is_a_finding_for_validate_and_stops_a_render(tmp_path: Path, doc: bytes, validate_says: str) -> None:
    _ledger(tmp_path, "genomics", doc)
    [found] = read_ledger_files(tmp_path)
    assert found.ledger is None and found.error is not None and validate_says in found.error
    with pytest.raises(InputError, match="genomics.json: not a fedgen ownership record"):
        read_ledgers(tmp_path)


def test_paths_a_render_may_not_touch_stop_a_render_but_are_validates_to_judge(tmp_path: Path) -> None:
    _ledger(tmp_path, "genomics", {"files": {"../../etc/passwd": "0" * 64}, "shared": []})
    [found] = read_ledger_files(tmp_path)
    assert found.ledger is not None and "../../etc/passwd" in found.ledger.files  # FG1xx: recorded, and missing
    with pytest.raises(InputError, match="invalid entry '../../etc/passwd' \\(leaves the repository\\)"):
        read_ledgers(tmp_path)


def test_the_size_cap_holds_for_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate capped a ledger's size; render read any size. Now both stop at MAX_LEDGER_BYTES."""
    monkeypatch.setattr(ledger_read, "MAX_LEDGER_BYTES", 64)
    _ledger(tmp_path, "genomics", {"files": {}, "shared": [], "federation": "x" * 100})
    [found] = read_ledger_files(tmp_path)
    assert found.ledger is None and found.error is not None and "larger than" in found.error
    with pytest.raises(InputError, match="not a fedgen ownership record"):
        read_ledgers(tmp_path)


def test_a_symlinked_ledger_is_never_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"files": {}}))
    repo = tmp_path / "repo"
    (repo / OWNED).mkdir(parents=True)
    (repo / OWNED / "genomics.json").symlink_to(outside)
    [found] = read_ledger_files(repo)
    assert found.ledger is None and found.error is not None and "symbolic link" in found.error
    with pytest.raises(InputError, match="symbolic link"):
        read_ledgers(repo)


def test_the_plan_takes_owned_and_shared_files_as_data(tmp_path: Path) -> None:
    owned = {"tenants/fl-genomics/base/namespace.yaml": b"kind: Namespace\n"}
    shared = {"clusters/gke-eu/kustomization.yaml": b"resources: []\n"}
    plan = make_plan(tmp_path, RenderedFiles("genomics", "spec/federation.yaml", owned, (CONTRIBUTION,), shared), {}, {})
    changes = {c.path: (c.action, c.new) for c in plan.changes}
    assert changes[".fedgen/owned/genomics.json"][0] == "create"
    assert {p: new for p, (_, new) in changes.items() if p in {*owned, *shared}} == {**owned, **shared}
    recorded = json.loads(changes[".fedgen/owned/genomics.json"][1] or b"")
    assert recorded["shared"] == list(shared) and [Contribution.from_json(c) for c in recorded["contributions"]] == [CONTRIBUTION]


@pytest.mark.parametrize("module", ["fedgen.write", "fedgen.ledger", "fedgen.seal.policy"])
def test_the_core_imports_nothing_of_render_or_validate(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith(('fedgen.render', 'fedgen.validate'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
