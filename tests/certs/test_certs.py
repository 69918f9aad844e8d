"""fedgen certs and fedgen rotate on real provisioning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import fedgen_cli, render_spec, tree_snapshot


def _rendered(write_spec: Callable[..., Path]) -> tuple[Path, Path]:
    spec = write_spec()
    assert render_spec(spec).exit_code == 0
    return spec, spec.parent.parent


def _certs(repo: Path) -> dict[str, Any]:
    return json.loads((repo / ".fedgen/state/genomics/state.json").read_text())["nvflare_cert"]


def _tree(repo: Path) -> dict[str, bytes]:
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def test_certs_lists_expiry_and_exits_1_within_threshold(write_spec: Callable[..., Path]) -> None:
    spec = write_spec()
    repo = spec.parent.parent
    before = fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json")
    assert before.exit_code == 1  # nothing issued before the first render
    assert {c["status"] for c in json.loads(before.stdout)["certificates"]} == {"not-issued"}
    assert fedgen_cli("render", str(spec), "--repo", str(repo)).exit_code == 0
    ok = fedgen_cli("certs", str(spec), "--repo", str(repo), "--format", "json")
    assert ok.exit_code == 0, ok.output
    rows = json.loads(ok.stdout)["certificates"]
    assert [r["name"] for r in rows] == ["root CA", "flserver", "site-a", "site-b", "lead@genomics.example.org"]
    assert all(300 < r["days_left"] <= 360 for r in rows)
    soon = fedgen_cli("certs", str(spec), "--repo", str(repo), "--within", "400")
    assert soon.exit_code == 1 and "expiring" in soon.stdout


def test_rotate_a_site_changes_only_its_certificate_and_no_repo_file(write_spec: Callable[..., Path]) -> None:
    spec, repo = _rendered(write_spec)
    certs, tree = _certs(repo), _tree(repo)
    result = fedgen_cli("rotate", "site-a", "--spec", str(spec), "--repo", str(repo))
    assert result.exit_code == 0, result.output
    assert "issued 1 certificate: site-a" in result.stderr and "site-a: a new bundle (own certificate re-issued)" in result.stderr
    after = _certs(repo)
    assert {k for k in after if after[k] != certs.get(k)} == {"site-a"}
    assert after["site-a"]["pri_key"] != certs["site-a"]["pri_key"]
    assert _tree(repo) == tree


@pytest.mark.parametrize("engine, name", [("config-sync", "Config Sync"), ("argocd", "Argo CD")])
def test_rotate_the_server_changes_its_kit_files(write_spec: Callable[..., Path], engine: str, name: str) -> None:
    spec = write_spec(lambda d: d["spec"]["gitops"].__setitem__("engine", engine))
    repo = spec.parent.parent
    assert fedgen_cli("render", str(spec), "--repo", str(repo)).exit_code == 0
    certs, tree = _certs(repo), _tree(repo)
    result = fedgen_cli("rotate", "flserver", "--spec", str(spec), "--repo", str(repo))
    assert result.exit_code == 0, result.output
    # The message names the GitOps engine the spec uses.
    assert f"flserver: commit and push: {name} rolls the server (own certificate re-issued)" in result.stderr
    after = _certs(repo)
    assert {k for k in after if after[k] != certs.get(k)} == {"flserver"}
    new_tree = _tree(repo)
    changed = {p for p in tree if tree[p] != new_tree.get(p)}
    base = "tenants/fl-genomics/nvflare-flserver"
    assert changed == {f"{base}/configmaps.yaml", f"{base}/sealed-secret.yaml", f"{base}/deployment.yaml", ".fedgen/owned/genomics.json"}


def test_rotate_root_ca_reissues_everything(write_spec: Callable[..., Path]) -> None:
    spec, repo = _rendered(write_spec)
    certs = _certs(repo)
    result = fedgen_cli("rotate", "--root-ca", "--spec", str(spec), "--repo", str(repo), "--yes")
    assert result.exit_code == 0, result.output
    after = _certs(repo)
    assert all(after[k] != certs[k] for k in certs)
    assert "site-a, site-b, lead@genomics.example.org: a new bundle (root CA changed)" in result.stderr


def test_rotate_unknown_participant_is_exit_2(write_spec: Callable[..., Path]) -> None:
    spec, repo = _rendered(write_spec)
    result = fedgen_cli("rotate", "site-z", "--spec", str(spec), "--repo", str(repo))
    assert result.exit_code == 2
    assert "not a participant fedgen issues keys for in genomics: site-z (known: flserver, site-a, site-b, lead@genomics.example.org)" in result.stderr
    assert fedgen_cli("rotate", "--spec", str(spec), "--repo", str(repo)).exit_code == 2
