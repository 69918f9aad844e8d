"""A site running its client from the repo on its own cluster: its sync root, sealed key, egress."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ruamel.yaml import YAML

from fedgen.cli import main
from fedgen.seal.certificate import generate_development_keypair
from tests.support import kustomize_build, tool, tree_snapshot


@pytest.fixture(scope="module")
def site_cluster_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("site-sealing")
    key, cert = generate_development_keypair(common_name="hospital-a-sealing")
    (folder / "key.pem").write_bytes(key)
    (folder / "cert.pem").write_bytes(cert)
    return folder / "key.pem", folder / "cert.pem"


def _with_site_cluster(d: dict[str, Any]) -> None:
    d["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "hosp-a.pem"}})
    d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
    d["spec"]["server"]["externalAddress"] = "203.0.113.10"


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def _unseal(sealed: Path, key: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [tool("kubeseal"), "--recovery-unseal", "--recovery-private-key", str(key), "-o", "json"],
        input=sealed.read_bytes(),
        capture_output=True,
        timeout=60,
    )


def test_site_cluster_gets_its_own_sync_root(
    write_spec: Callable[..., Path], site_cluster_keypair: tuple[Path, Path], sealing_keypair: tuple[Path, Path]
) -> None:
    spec = write_spec(_with_site_cluster)
    shutil.copy(site_cluster_keypair[1], spec.parent / "hosp-a.pem")
    repo = spec.parent.parent
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    root = YAML(typ="safe", pure=True).load((repo / "clusters/gke-hosp-a/kustomization.yaml").read_text())
    assert root["resources"] == ["sites/site-a"]
    built = {(d["kind"], d["metadata"]["name"]): d for d in _docs(kustomize_build(repo / "clusters/gke-hosp-a"))}
    assert set(built) == {
        ("Namespace", "nvflare-site-a"),
        ("ServiceAccount", "nvflare-client"),
        ("ConfigMap", "nvflare-site-a-startup"),
        ("ConfigMap", "nvflare-site-a-local"),
        ("SealedSecret", "nvflare-site-a-key"),
        ("Deployment", "nvflare-site-a"),
        ("NetworkPolicy", "default-deny-all"),
        ("NetworkPolicy", "allow-egress-dns"),
        ("NetworkPolicy", "allow-egress-nvflare-server"),
    }
    pod = built[("Deployment", "nvflare-site-a")]["spec"]["template"]["spec"]
    assert pod["hostAliases"] == [{"ip": "203.0.113.10", "hostnames": ["fl.genomics.example.org"]}]
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    egress = built[("NetworkPolicy", "allow-egress-nvflare-server")]["spec"]["egress"]
    assert egress == [{"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [{"protocol": "TCP", "port": 9102}]}]
    fed_client = json.loads(built[("ConfigMap", "nvflare-site-a-startup")]["data"]["fed_client.json"])
    assert fed_client["servers"][0]["service"]["target"] == "fl.genomics.example.org:9102"
    # Sealed for the site cluster's controller only.
    sealed = repo / "clusters/gke-hosp-a/sites/site-a/sealed-secret.yaml"
    assert _unseal(sealed, sealing_keypair[0]).returncode != 0
    unsealed = _unseal(sealed, site_cluster_keypair[0])
    assert unsealed.returncode == 0, unsealed.stderr.decode()
    key = serialization.load_pem_private_key(base64.b64decode(json.loads(unsealed.stdout)["data"]["client.key"]), password=None)
    cert = x509.load_pem_x509_certificate(built[("ConfigMap", "nvflare-site-a-startup")]["data"]["client.crt"].encode())
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "site-a"
    bootstrap = _docs(kustomize_build(repo / "clusters/gke-hosp-a/bootstrap"))
    assert bootstrap[0]["spec"]["git"]["dir"] == "clusters/gke-hosp-a"
    # Standalone clusters: no Terraform variables (tests/render/test_platform.py renders a site on the reference architecture).
    assert not (repo / "terraform").exists()
    # The server cluster's sync root holds nothing of the site.
    assert not any(d["metadata"].get("namespace") == "nvflare-site-a" for d in _docs(kustomize_build(repo / "clusters/gke-eu")))
    # Dropping the site's cluster removes every file of it again.
    write_spec()
    assert CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)]).exit_code == 0
    assert not any(p.startswith("clusters/gke-hosp-a") for p in tree_snapshot(repo))


def test_site_on_the_server_cluster_is_refused(write_spec: Callable[..., Path]) -> None:
    spec = write_spec(lambda d: d["spec"]["sites"][0].__setitem__("cluster", "gke-eu"))
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(spec.parent.parent)])
    assert result.exit_code == 2 and "cannot run on the server's cluster" in result.stderr


def _deployment(repo: Path, site: str) -> dict[str, Any]:
    (deployment,) = _docs((repo / f"clusters/gke-hosp-a/sites/{site}/deployment.yaml").read_text())
    return deployment


def test_rotating_a_site_restarts_its_pod_and_changes_nothing_else(write_spec: Callable[..., Path], site_cluster_keypair: tuple[Path, Path]) -> None:
    """The site's kit reaches its pod through ConfigMaps and a SealedSecret, which Kubernetes does not roll
    on: only the kit digest in the pod template makes the rotated certificate reach the running client."""
    from fedgen.render.pod import KIT_DIGEST, kit_digest

    def both_sites_on_the_cluster(d: dict[str, Any]) -> None:
        _with_site_cluster(d)
        d["spec"]["sites"][1]["cluster"] = "gke-hosp-a"

    spec = write_spec(both_sites_on_the_cluster)
    shutil.copy(site_cluster_keypair[1], spec.parent / "hosp-a.pem")
    repo = spec.parent.parent
    assert CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)]).exit_code == 0
    before, deployment = tree_snapshot(repo), _deployment(repo, "site-a")

    result = CliRunner().invoke(main, ["rotate", "site-a", "--spec", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    after = tree_snapshot(repo)
    site = "clusters/gke-hosp-a/sites/site-a"
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed == {f"{site}/configmaps.yaml", f"{site}/sealed-secret.yaml", f"{site}/deployment.yaml", ".fedgen/owned/genomics.json"}

    rotated = _deployment(repo, "site-a")
    old_digest = deployment["spec"]["template"]["metadata"]["annotations"].pop(KIT_DIGEST)
    new_digest = rotated["spec"]["template"]["metadata"]["annotations"].pop(KIT_DIGEST)
    assert new_digest != old_digest
    assert rotated == deployment  # the digest is the only change to the Deployment
    # The digest is that of what the pod mounts now: the site's ConfigMaps and its sealed key.
    (sealed,) = _docs((repo / f"{site}/sealed-secret.yaml").read_text())
    assert new_digest == kit_digest(_docs((repo / f"{site}/configmaps.yaml").read_text()), sealed["spec"]["encryptedData"])
