"""spec.platform.kind: on the reference architecture nothing its own Config Sync manages is rendered; standalone
renders the tenant baseline; site clusters decide per cluster; spec checks and warnings that follow."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ruamel.yaml import YAML

from fedgen import refarch
from fedgen.cli import main
from fedgen.validate.model import identity
from tests.support import OTHER_IMAGE, kustomize_build, render_spec, tree_snapshot

SpecWriter = Callable[..., Path]
SITE_CLUSTER = "gke-hosp-a"


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def _kind(kind: str) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d["spec"]["platform"]["kind"] = kind

    return edit


def _with_site_cluster(platform: str) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d["spec"]["platform"]["kind"] = refarch.REFERENCE_ARCHITECTURE
        d["spec"]["clusters"].append(
            {"name": SITE_CLUSTER, "projectId": "hosp-a-proj", "region": "us-east4", "sealing": {"certificate": "sealing.pem"}, "platform": {"kind": platform}}
        )
        d["spec"]["sites"][0]["cluster"] = SITE_CLUSTER
        d["spec"]["server"]["externalAddress"] = "203.0.113.10"

    return edit


def _built(repo: Path, cluster: str) -> set[tuple[str, str, str, str]]:
    return {identity(d) for d in _docs(kustomize_build(repo / "clusters" / cluster))}


def test_reference_architecture_renders_nothing_the_platform_manages(write_spec: SpecWriter) -> None:
    spec = write_spec(_kind(refarch.REFERENCE_ARCHITECTURE))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    repo = spec.parent.parent
    built = _built(repo, "gke-eu")
    managed = refarch.managed_objects(["fl-genomics"])
    assert not built & set(managed)
    assert sorted(p for p in tree_snapshot(repo) if p.startswith("tenants/fl-genomics/base/")) == [
        "tenants/fl-genomics/base/kustomization.yaml",
        "tenants/fl-genomics/base/service-entries.yaml",
    ]
    # The workload refers to what the platform provides: the tenant's fl-ksa and namespace.
    deployment = next(d for d in _docs(kustomize_build(repo / "clusters/gke-eu")) if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == refarch.TENANT_KSA
    assert deployment["metadata"]["namespace"] == "fl-genomics"


def test_standalone_renders_exactly_the_baseline_the_platform_would_provide(write_spec: SpecWriter) -> None:
    """What a standalone render has and a reference-architecture render leaves out is the platform's
    per-tenant baseline (our same-namespace AuthorizationPolicy stands for its allow-within-namespace)."""
    platform_spec = write_spec(_kind(refarch.REFERENCE_ARCHITECTURE))
    assert render_spec(platform_spec).exit_code == 0
    on_platform = _built(platform_spec.parent.parent, "gke-eu")
    standalone_spec = write_spec(_kind(refarch.STANDALONE))
    assert render_spec(standalone_spec).exit_code == 0
    repo = standalone_spec.parent.parent
    standalone = _built(repo, "gke-eu")
    left_out = standalone - on_platform
    ours = ("security.istio.io", "AuthorizationPolicy", "fl-genomics", "allow-same-namespace")
    platform_names = {oid for oid in refarch.tenant_objects("fl-genomics") if oid[3] != "allow-egress-istio-egress"}
    assert left_out == (platform_names - {("security.istio.io", "AuthorizationPolicy", "fl-genomics", "allow-within-namespace")}) | {ours}
    assert on_platform < standalone
    assert not (repo / "terraform").exists(), "standalone clusters get no Terraform variables"


def test_site_cluster_decides_its_own_platform(write_spec: SpecWriter) -> None:
    spec = write_spec(_with_site_cluster(refarch.REFERENCE_ARCHITECTURE))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    repo = spec.parent.parent
    built = {(d["kind"], d["metadata"]["name"]): d for d in _docs(kustomize_build(repo / f"clusters/{SITE_CLUSTER}"))}
    assert not {identity(d) for d in built.values()} & set(refarch.managed_objects(["nvflare-site-a"]))
    assert set(built) == {
        ("ServiceAccount", "nvflare-client"),
        ("ConfigMap", "nvflare-site-a-startup"),
        ("ConfigMap", "nvflare-site-a-local"),
        ("SealedSecret", "nvflare-site-a-key"),
        ("Deployment", "nvflare-site-a"),
        ("NetworkPolicy", "allow-egress-nvflare-server"),
    }
    template = built[("Deployment", "nvflare-site-a")]["spec"]["template"]
    annotations = dict(template["metadata"]["annotations"])
    assert len(annotations.pop("fedgen.dev/kit-digest")) == 16
    assert annotations == {"traffic.sidecar.istio.io/excludeOutboundPorts": "9102"}
    assert (repo / f"terraform/{SITE_CLUSTER}/uc_federated_learning.auto.tfvars.json").is_file()

    spec = write_spec(_with_site_cluster(refarch.STANDALONE))
    assert render_spec(spec).exit_code == 0
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _docs(kustomize_build(repo / f"clusters/{SITE_CLUSTER}"))}
    assert {("Namespace", "nvflare-site-a"), ("NetworkPolicy", "default-deny-all"), ("NetworkPolicy", "allow-egress-dns")} <= kinds
    assert not (repo / f"terraform/{SITE_CLUSTER}").exists()
    assert (repo / "terraform/gke-eu/platform.auto.tfvars.json").is_file()


def test_server_cluster_without_project_number_is_invalid_on_the_platform(write_spec: SpecWriter) -> None:
    def drop_number(kind: str) -> Callable[[dict[str, Any]], None]:
        def edit(d: dict[str, Any]) -> None:
            d["spec"]["platform"]["kind"] = kind
            del d["spec"]["clusters"][0]["projectNumber"]

        return edit

    spec = write_spec(drop_number(refarch.REFERENCE_ARCHITECTURE))
    repo = spec.parent.parent
    before = tree_snapshot(repo)
    result = render_spec(spec)
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "needs projectNumber" in line and "gcloud projects describe gen-proj --format='value(projectNumber)'" in line
    assert tree_snapshot(repo) == before
    # A standalone cluster names no principal in any Terraform variable: the number is not needed.
    assert render_spec(write_spec(drop_number(refarch.STANDALONE))).exit_code == 0


def test_render_warns_about_ports_regions_and_foreign_buckets_on_the_platform(write_spec: SpecWriter) -> None:
    result = render_spec(write_spec(_kind(refarch.REFERENCE_ARCHITECTURE)))
    assert result.exit_code == 0, result.output
    assert "TCP 9102, 9103" in result.stderr and "gx-prod-federated-learning-firewall-policy" in result.stderr
    assert "region(s) europe-west4" in result.stderr

    def usual(d: dict[str, Any]) -> None:
        d["spec"]["platform"]["kind"] = refarch.REFERENCE_ARCHITECTURE
        d["spec"]["server"]["ports"] = {"fl": 8002, "admin": 8003}
        d["spec"]["clusters"][0]["region"] = "us-east4"
        d["spec"]["workspace"]["bucketName"] = "genomics-existing-ws"

    spec = write_spec(usual)
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "firewall" not in result.stderr and "region" not in result.stderr
    assert "gcloud storage buckets add-iam-policy-binding gs://genomics-existing-ws" in result.stderr
    fl = (spec.parent.parent / "terraform/gke-eu/uc_federated_learning.auto.tfvars.json").read_text()
    assert '"federated_learning_cloud_storage_buckets": {}' in fl and '"federated_learning_cloud_storage_buckets_iam_bindings": []' in fl

    result = render_spec(write_spec())  # standalone: the platform's firewall and regions do not apply
    assert result.exit_code == 0 and "firewall" not in result.stderr and "region" not in result.stderr


def test_digest_pinned_image_is_used_verbatim_everywhere(write_spec: SpecWriter, tmp_path: Path) -> None:
    spec = write_spec(_with_site_cluster(refarch.REFERENCE_ARCHITECTURE))
    assert render_spec(spec).exit_code == 0
    repo = spec.parent.parent
    for cluster in ("gke-eu", SITE_CLUSTER):
        images = {
            c["image"]
            for d in _docs(kustomize_build(repo / "clusters" / cluster))
            if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        assert images == {OTHER_IMAGE}
    out = tmp_path / "site-b.tar.gz"
    result = CliRunner().invoke(main, ["client-bundle", "site-b", "--spec", str(spec), "--repo", str(repo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as tar:
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile() and m.name.endswith((".md", ".yaml", ".sh"))}  # type: ignore[union-attr]
    holding = sorted(name for name, text in texts.items() if OTHER_IMAGE in text)
    assert any(n.endswith("README.md") for n in holding) and any(n.endswith(".yaml") for n in holding), holding
    assert not any("nvflare@sha256" in text.replace(OTHER_IMAGE, "") for text in texts.values()), "a mangled image reference"
