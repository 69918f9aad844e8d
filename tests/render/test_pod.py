"""fedgen.render.pod: one builder for every NVFlare pod (server, site cluster, bundle), each carrying the
digest of the kit it mounts."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from fedgen.cli import main
from fedgen.render.pod import KIT_DIGEST, kit_digest
from fedgen.seal.certificate import generate_development_keypair
from tests.support import tree_snapshot

SERVER_DIR = "tenants/fl-genomics/nvflare-flserver"
SERVER_IP = "203.0.113.10"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(path.read_text()) if d]


def _run(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


@pytest.fixture
def site_clusters(write_spec: Callable[..., Path]) -> tuple[Path, Path]:
    """(spec, repo) rendered with site-a on a standalone cluster and site-b on one with the reference
    architecture (its sidecar is bypassed for the fl port)."""

    def edit(d: dict[str, Any]) -> None:
        d["spec"]["clusters"] += [
            {"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}},
            {
                "name": "gke-hosp-b",
                "projectId": "hosp-b-proj",
                "region": "us-central1",
                "sealing": {"certificate": "hosp-b.pem"},
                "platform": {"kind": "reference-architecture"},
            },
        ]
        d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
        d["spec"]["sites"][1]["cluster"] = "gke-hosp-b"
        d["spec"]["server"]["externalAddress"] = SERVER_IP

    spec = write_spec(edit)
    for cluster in ("hosp-a", "hosp-b"):
        (spec.parent / f"{cluster}.pem").write_bytes(generate_development_keypair(common_name=cluster)[1])
    repo = spec.parent.parent
    _run("render", str(spec), "--repo", str(repo))
    return spec, repo


def _mounted(deployment: dict[str, Any], folder: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The ConfigMaps and the sealed key the Deployment's volumes name, found in its folder."""
    objects = {(d["kind"], d["metadata"]["name"]): d for f in sorted(folder.glob("*.yaml")) for d in _docs(f) if "metadata" in d}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    sources = next(v["projected"]["sources"] for v in volumes if v["name"] == "startup")
    startup = next(s["configMap"]["name"] for s in sources if "configMap" in s)
    secret = next(s["secret"]["name"] for s in sources if "secret" in s)
    local = next(v["configMap"]["name"] for v in volumes if v["name"] == "local")
    configmaps = [objects[("ConfigMap", startup)], objects[("ConfigMap", local)]]
    return configmaps, objects[("SealedSecret", secret)]["spec"]["encryptedData"]


def test_every_rendered_deployment_carries_the_digest_of_what_it_mounts(site_clusters: tuple[Path, Path]) -> None:
    _, repo = site_clusters
    deployments = {p.relative_to(repo).as_posix(): p for p in repo.rglob("deployment.yaml")}
    assert sorted(deployments) == [
        "clusters/gke-hosp-a/sites/site-a/deployment.yaml",
        "clusters/gke-hosp-b/sites/site-b/deployment.yaml",
        f"{SERVER_DIR}/deployment.yaml",
    ]
    for path in deployments.values():
        (deployment,) = _docs(path)
        configmaps, sealed = _mounted(deployment, path.parent)
        assert deployment["spec"]["template"]["metadata"]["annotations"][KIT_DIGEST] == kit_digest(configmaps, sealed), path
    platform = _docs(deployments["clusters/gke-hosp-b/sites/site-b/deployment.yaml"])[0]["spec"]["template"]["metadata"]
    assert platform["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "9102"


def test_rotating_the_server_changes_its_pod_template_by_the_digest_alone(site_clusters: tuple[Path, Path]) -> None:
    spec, repo = site_clusters
    before = tree_snapshot(repo)
    (deployment,) = _docs(repo / SERVER_DIR / "deployment.yaml")
    _run("rotate", "flserver", "--spec", str(spec), "--repo", str(repo))
    after = tree_snapshot(repo)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed == {f"{SERVER_DIR}/{f}" for f in ("configmaps.yaml", "sealed-secret.yaml", "deployment.yaml")} | {".fedgen/owned/genomics.json"}
    (rotated,) = _docs(repo / SERVER_DIR / "deployment.yaml")
    old = deployment["spec"]["template"]["metadata"]["annotations"].pop(KIT_DIGEST)
    new = rotated["spec"]["template"]["metadata"]["annotations"].pop(KIT_DIGEST)
    assert old != new and rotated == deployment
    assert new == kit_digest(*_mounted(_docs(repo / SERVER_DIR / "deployment.yaml")[0], repo / SERVER_DIR))


def test_a_site_runs_the_same_pod_from_its_cluster_folder_and_from_its_bundle(site_clusters: tuple[Path, Path], tmp_path: Path) -> None:
    """The site-cluster Deployment and the bundle's differ only where the two ways of running differ: labels,
    the ServiceAccount fedgen renders for the site cluster, the platform's mesh, and the key (sealed in the
    repository, plain in the bundle) in the digest."""
    spec, repo = site_clusters
    out = tmp_path / "site-a.tar.gz"
    _run("client-bundle", "site-a", "--spec", str(spec), "--repo", str(repo), "--out", str(out), "--server-address", SERVER_IP)
    with tarfile.open(out, "r:gz") as tar:
        tar.extractall(tmp_path, filter="tar")
    (bundled,) = _docs(tmp_path / "site-a/k8s/deployment.yaml")
    (rendered,) = _docs(repo / "clusters/gke-hosp-a/sites/site-a/deployment.yaml")
    bundle_pod, cluster_pod = bundled["spec"]["template"]["spec"], rendered["spec"]["template"]["spec"]
    assert cluster_pod.pop("serviceAccountName") == "nvflare-client" and "serviceAccountName" not in bundle_pod
    assert bundle_pod == cluster_pod
    assert bundle_pod["hostAliases"] == [{"ip": SERVER_IP, "hostnames": ["fl.genomics.example.org"]}]
    assert {k: v for k, v in bundled["spec"].items() if k not in ("selector", "template")} == {
        k: v for k, v in rendered["spec"].items() if k not in ("selector", "template")
    }


def test_a_site_cluster_pod_and_the_server_pod_share_hardening_and_layout(site_clusters: tuple[Path, Path]) -> None:
    _, repo = site_clusters
    (server,) = _docs(repo / SERVER_DIR / "deployment.yaml")
    (client,) = _docs(repo / "clusters/gke-hosp-a/sites/site-a/deployment.yaml")
    s, c = server["spec"]["template"]["spec"], client["spec"]["template"]["spec"]
    assert s["securityContext"] == c["securityContext"]
    assert (s["automountServiceAccountToken"], s["enableServiceLinks"]) == (c["automountServiceAccountToken"], c["enableServiceLinks"]) == (False, False)
    sc, cc = s["containers"][0], c["containers"][0]
    for key in ("name", "securityContext", "env", "command", "imagePullPolicy", "image"):
        assert sc[key] == cc[key], key
    # The same kit layout: a writable kit root named after the participant, startup/ and local/ read-only in it.
    for container, name in ((sc, "flserver"), (cc, "site-a")):
        root = f"/var/nvflare/{name}"
        assert container["args"][3:5] == ["-m", root]
        mounts = {m["name"]: (m["mountPath"], m.get("readOnly", False)) for m in container["volumeMounts"]}
        assert {k: mounts[k] for k in ("kit", "startup", "local", "tmp")} == {
            "kit": (root, False),
            "startup": (f"{root}/startup", True),
            "local": (f"{root}/local", True),
            "tmp": ("/tmp", False),
        }
    # A client listens on nothing: only the server is probed.
    assert "livenessProbe" in sc and "livenessProbe" not in cc
