"""Several federations in one repository: shared clusters, separate tenants, exact ownership."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support import fedgen_cli, kustomize_build, render_spec, tree_snapshot

SpecWriter = Callable[..., Path]


def _on_platform(d: dict[str, Any]) -> None:
    d["spec"]["platform"]["kind"] = "reference-architecture"


def _imaging(d: dict[str, Any]) -> None:
    d["metadata"]["name"] = "imaging"
    d["spec"]["server"].update(name="imgserver", tenant="fl-imaging", ports={"fl": 9202, "admin": 9203}, hostNames=["imgserver"])
    d["spec"]["sites"] = [{"name": "site-x", "org": "hospital_x"}]


def _tree(repo: Path) -> dict[str, bytes]:
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def test_two_federations_share_a_cluster_and_own_their_files(write_spec: SpecWriter) -> None:
    genomics = write_spec(_on_platform)
    repo = genomics.parent.parent
    assert render_spec(genomics).exit_code == 0
    alone = _tree(repo)
    imaging = write_spec(lambda d: (_on_platform(d), _imaging(d)), name="imaging.yaml")
    result = render_spec(imaging)
    assert result.exit_code == 0, result.output
    both = _tree(repo)
    # The imaging render changed no file genomics owns; it only added its own and rewrote shared ones.
    ledger = json.loads(both[".fedgen/owned/genomics.json"])
    for path in ledger["files"]:
        assert both[path] == alone[path], path
    changed_existing = {p for p in alone if both.get(p) != alone[p]}
    # Shared files: their content (and header naming both specs) now covers both federations.
    assert changed_existing == {
        "clusters/gke-eu/kustomization.yaml",
        "clusters/gke-eu/bootstrap/kustomization.yaml",
        "clusters/gke-eu/bootstrap/root-sync.yaml",
        "terraform/gke-eu/uc_federated_learning.auto.tfvars.json",
    }
    assert b"from spec/federation.yaml, spec/imaging.yaml" in both["clusters/gke-eu/bootstrap/root-sync.yaml"]
    root = YAML(typ="safe", pure=True).load(both["clusters/gke-eu/kustomization.yaml"])
    assert root["resources"] == [
        "../../tenants/fl-genomics/overlays/gke-eu",
        "../../tenants/fl-imaging/overlays/gke-eu",
        "istio-ingress/fl-genomics",
        "istio-ingress/fl-imaging",
    ]
    built = [d for d in YAML(typ="safe", pure=True).load_all(kustomize_build(repo / "clusters/gke-eu")) if d]
    deployments = sorted(d["metadata"]["name"] for d in built if d["kind"] == "Deployment")
    assert deployments == ["nvflare-flserver", "nvflare-imgserver"]
    tfvars = json.loads(both["terraform/gke-eu/uc_federated_learning.auto.tfvars.json"])
    assert tfvars["federated_learning_tenant_names"] == ["fl-genomics", "fl-imaging"]
    assert [b["bucket_name"] for b in tfvars["federated_learning_cloud_storage_buckets_iam_bindings"]] == ["flws", "flws"]
    # Re-rendering genomics now leaves every file as it is.
    assert render_spec(genomics).exit_code == 0
    assert _tree(repo) == both
    # Removing imaging restores exactly the single-federation tree.
    removed = fedgen_cli("remove", "imaging", "--repo", str(repo), "--yes")
    assert removed.exit_code == 0, removed.output
    assert _tree(repo) == alone


def test_conflicting_federations_are_refused_naming_both_specs(write_spec: SpecWriter) -> None:
    genomics = write_spec()
    repo = genomics.parent.parent
    assert render_spec(genomics).exit_code == 0
    before = _tree(repo)
    cases = [
        (lambda d: (_imaging(d), d["spec"]["server"].__setitem__("tenant", "fl-genomics")), "both use tenant 'fl-genomics'"),
        (lambda d: (_imaging(d), d["spec"]["server"].__setitem__("name", "flserver")), "both name their server 'flserver'"),
        (lambda d: (_imaging(d), d["spec"]["server"].__setitem__("ports", {"fl": 9103, "admin": 9300})), "ingress gateway port(s) [9103]"),
        (lambda d: (_imaging(d), d["spec"]["gitops"].__setitem__("revision", "main")), "disagree on spec.gitops"),
        (lambda d: (_imaging(d), _on_platform(d)), "disagree on the platform of cluster 'gke-eu'"),
    ]
    for edit, message in cases:
        imaging = write_spec(edit, name="imaging.yaml")
        result = render_spec(imaging)
        assert result.exit_code == 2, result.output
        assert message in result.stderr, result.stderr
        assert "'genomics' (spec/federation.yaml)" in result.stderr and "'imaging' (spec/imaging.yaml)" in result.stderr
        assert _tree(repo) == before


def test_remove_unknown_federation_is_exit_2(write_spec: SpecWriter) -> None:
    genomics = write_spec()
    repo = genomics.parent.parent
    assert render_spec(genomics).exit_code == 0
    result = fedgen_cli("remove", "nope", "--repo", str(repo), "--yes")
    assert result.exit_code == 2 and "rendered here: genomics" in result.stderr
