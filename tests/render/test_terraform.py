"""The rendered Terraform variables feed the reference architecture's root modules as the README says.

Runs the real terraform binary on folders that declare exactly the variables upstream's modules declare
(tests/render/terraform/: restated facts), one per module, and plans each rendered variant with the files the
README passes to that module: no error (types, validation conditions, the bucket lookup) and no warning
(an undeclared variable warns). Needs no provider, no backend and no network.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedgen import refarch
from fedgen.api import render
from tests.support import OTHER_SPEC, REPO_ROOT, dump_yaml, tool
from tests.validate.support import pristine_cert

FIXTURES = Path(__file__).parent / "terraform"
# Which shared variable groups each upstream root module declares (its _<group>_variables.tf links):
# platform and cluster everywhere; the federated-learning group in the modules that read tenants, buckets
# or node pools; the platform's Config Sync group only in cloud_storage and config_management. The example
# workload module (example_nvidia_flare_tff) is the one fedgen replaces: never applied, never fed.
MODULE_GROUPS: dict[str, tuple[str, ...]] = {
    "initialize": ("platform", "cluster"),
    "network": ("platform", "cluster"),
    "cloud_service_mesh": ("platform", "cluster"),
    "cloud_storage": ("platform", "cluster", "uc_federated_learning", "configmanagement"),
    "config_management": ("platform", "cluster", "uc_federated_learning", "configmanagement"),
    "container_image_repository": ("platform", "cluster", "uc_federated_learning"),
    "container_node_pool": ("platform", "cluster", "uc_federated_learning"),
    "firewall": ("platform", "cluster", "uc_federated_learning"),
    "key_management_service": ("platform", "cluster", "uc_federated_learning"),
    "private_google_access": ("platform", "cluster", "uc_federated_learning"),
    "service_account": ("platform", "cluster", "uc_federated_learning"),
}
TFVARS = re.compile(r"^terraform/(?P<cluster>[a-z0-9-]+)/(?P<group>[a-z_]+)\.auto\.tfvars\.json$")


# ------------------------------------------------------------------------------------------ terraform


def _env(home: Path) -> dict[str, str]:
    config = home / "terraformrc"
    config.write_text("")
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),  # none of the machine's settings; no registry is ever asked
        "CHECKPOINT_DISABLE": "1",  # no version check over the network
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
    }


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A folder per upstream root module with the declarations it links, initialised once."""
    root = tmp_path_factory.mktemp("upstream")
    env = _env(root)
    out: dict[str, Path] = {}
    for module, groups in MODULE_GROUPS.items():
        folder = root / module
        folder.mkdir()
        for group in groups:
            shutil.copy(FIXTURES / "groups" / f"{group}_variables.tf", folder / f"_{group}_variables.tf")
        if (FIXTURES / "modules" / module).is_dir():
            for extra in sorted((FIXTURES / "modules" / module).glob("*.tf")):
                shutil.copy(extra, folder / extra.name)
        proc = subprocess.run(
            [tool("terraform"), f"-chdir={folder}", "init", "-input=false", "-no-color"], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out[module] = folder
    yield out


def plan(folder: Path, var_files: list[Path]) -> subprocess.CompletedProcess[str]:
    args = [tool("terraform"), f"-chdir={folder}", "plan", "-input=false", "-no-color", "-lock=false"]
    args += [f"-var-file={f}" for f in var_files]
    return subprocess.run(args, env=_env(folder.parent), capture_output=True, text=True, timeout=120)


def assert_plans_cleanly(repo: Path, modules: dict[str, Path]) -> dict[str, dict[str, Path]]:
    """Plan every module with the files of every cluster folder the README passes to it; return them."""
    by_cluster: dict[str, dict[str, Path]] = {}
    for path in sorted((repo / "terraform").rglob("*")):
        if path.is_file():
            rel = path.relative_to(repo).as_posix()
            m = TFVARS.match(rel)
            assert m and m["group"] in refarch.VARIABLE_GROUPS, f"{rel}: not a values file of a known group"
            by_cluster.setdefault(m["cluster"], {})[m["group"]] = path
    for cluster, files in sorted(by_cluster.items()):
        assert set(files) == set(refarch.VARIABLE_GROUPS), (cluster, sorted(files))
        for module, folder in modules.items():
            proc = plan(folder, [files[g] for g in MODULE_GROUPS[module] if g in files])
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, f"{module} with terraform/{cluster}: {output}"
            assert "Warning" not in output and "undeclared" not in output, f"{module} with terraform/{cluster}: {output}"
    return by_cluster


# ------------------------------------------------------------------------------------------ variants


def _spec(**changes: Any) -> dict[str, Any]:
    """The spec unlike the example (other names, ports 9102/9103, digest-pinned image) on the reference
    architecture, in a region its cluster_region accepts."""
    spec = copy.deepcopy(OTHER_SPEC)
    spec["spec"]["platform"]["kind"] = refarch.REFERENCE_ARCHITECTURE
    spec["spec"]["clusters"][0]["region"] = "us-central1"
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            spec["spec"][section][field] = value
        else:
            spec["spec"][section] = value
    return spec


def _render(repo: Path, spec: dict[str, Any], name: str = "federation.yaml") -> None:
    folder = repo / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sealing.pem").write_bytes(pristine_cert())
    (folder / "hosp-a.pem").write_bytes(pristine_cert(2))
    dump_yaml(spec, folder / name)
    render(spec=folder / name, repo=repo)


def _example(repo: Path) -> None:
    shutil.copytree(REPO_ROOT / "examples", repo / "examples")
    render(spec=repo / "examples" / "federation.yaml", repo=repo)


def _tfvars(repo: Path, cluster: str, group: str) -> Any:
    return json.loads((repo / "terraform" / cluster / f"{group}.auto.tfvars.json").read_text())


def test_example_plans_cleanly(tmp_path: Path, modules: dict[str, Path]) -> None:
    _example(tmp_path)
    assert sorted(assert_plans_cleanly(tmp_path, modules)) == ["acp-dev"]
    fl = _tfvars(tmp_path, "acp-dev", "uc_federated_learning")
    assert fl["federated_learning_cloud_storage_buckets_iam_bindings"] == [
        {
            "bucket_name": "nvf-ws",  # the key of the bucket map, as cloud_storage looks it up
            "member": "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/my-project.svc.id.goog/subject/ns/fl-1/sa/fl-ksa",
            "role": "roles/storage.objectUser",
        }
    ]
    everything = "".join(p.read_text() for p in (tmp_path / "terraform").rglob("*.json"))
    assert "configmanagement_" not in everything and "nvidia_flare_tff_example" not in everything


@pytest.mark.parametrize(
    "variant",
    ["other-names-and-ports", "loadbalancer", "argocd"],
)
def test_variant_plans_cleanly(variant: str, tmp_path: Path, modules: dict[str, Path]) -> None:
    changes: dict[str, Any] = {}
    if variant == "loadbalancer":
        changes = {"server__exposure": "loadbalancer"}
    elif variant == "argocd":
        changes = {"gitops__engine": "argocd"}
    _render(tmp_path, _spec(**changes))
    assert sorted(assert_plans_cleanly(tmp_path, modules)) == ["gke-eu"]
    fl = _tfvars(tmp_path, "gke-eu", "uc_federated_learning")
    assert fl["federated_learning_tenant_names"] == ["fl-genomics"]
    assert fl["federated_learning_cloud_storage_buckets"] == {"flws": {"force_destroy": False, "versioning_enabled": True}}
    assert [b["bucket_name"] for b in fl["federated_learning_cloud_storage_buckets_iam_bindings"]] == ["flws"]
    assert fl["federated_learning_external_services_allowed_namespaces"] == (["fl-genomics"] if variant == "loadbalancer" else [])
    assert _tfvars(tmp_path, "gke-eu", "platform")["resource_name_prefix"] == "gx"


def test_site_clusters_plan_cleanly_and_standalone_ones_get_no_variables(tmp_path: Path, modules: dict[str, Path]) -> None:
    spec = _spec()
    spec["spec"]["clusters"] += [
        {"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "us-east5", "sealing": {"certificate": "hosp-a.pem"}},
        {
            "name": "gke-hosp-b",
            "projectId": "hosp-b-proj",
            "region": "europe-west1",
            "sealing": {"certificate": "hosp-a.pem"},
            "platform": {"kind": "standalone"},
        },
    ]
    spec["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
    spec["spec"]["sites"][1]["cluster"] = "gke-hosp-b"
    _render(tmp_path, spec)
    assert sorted(assert_plans_cleanly(tmp_path, modules)) == ["gke-eu", "gke-hosp-a"]
    site = _tfvars(tmp_path, "gke-hosp-a", "uc_federated_learning")
    assert site == {"federated_learning_node_pool_machine_type": "n4-standard-8", "federated_learning_tenant_names": ["nvflare-site-a"]}
    assert _tfvars(tmp_path, "gke-hosp-a", "cluster") == {"cluster_project_id": "hosp-a-proj", "cluster_region": "us-east5"}


def test_several_federations_plan_cleanly(tmp_path: Path, modules: dict[str, Path]) -> None:
    """Two federations on the example's cluster (their tenants and bindings merged) and one on its own."""
    _example(tmp_path)
    second = _spec(gitops={"engine": "config-sync", "repo": "https://github.com/example/fl-gitops.git", "revision": "main"})
    second["metadata"]["name"] = "imaging"
    second["spec"]["clusters"][0].update({"name": "acp-dev", "projectId": "my-project", "region": "us-east4"})
    second["spec"]["platform"].update({"resourceNamePrefix": "acp", "platformName": "dev"})
    second["spec"]["server"].update({"cluster": "acp-dev", "tenant": "fl-imaging", "name": "imgserver"})
    _render(tmp_path, second, "imaging.yaml")
    _render(tmp_path, _spec(), "genomics.yaml")
    assert sorted(assert_plans_cleanly(tmp_path, modules)) == ["acp-dev", "gke-eu"]
    fl = _tfvars(tmp_path, "acp-dev", "uc_federated_learning")
    assert fl["federated_learning_tenant_names"] == ["fl-1", "fl-imaging"]
    assert sorted(b["member"].rsplit("/ns/", 1)[1] for b in fl["federated_learning_cloud_storage_buckets_iam_bindings"]) == [
        "fl-1/sa/fl-ksa",
        "fl-imaging/sa/fl-ksa",
    ]
    assert sorted(fl["federated_learning_cloud_storage_buckets"]) == ["flws", "nvf-ws"]


# ------------------------------------------------------------------------------------------ the fixtures can fail


@pytest.mark.parametrize(
    ("module", "variables", "expected"),
    [
        ("container_node_pool", {"configmanagement_sync_repo": "https://github.com/example/fl-gitops.git"}, "undeclared variable"),
        ("cloud_storage", {"federated_learning_nvidia_flare_tff_example_workload_to_deploy": "flserver"}, "undeclared variable"),
        (
            "cloud_storage",
            {
                "federated_learning_cloud_storage_buckets": {"nvf-ws": {"force_destroy": False, "versioning_enabled": True}},
                "federated_learning_cloud_storage_buckets_iam_bindings": [{"bucket_name": "my-project-acp-dev-nvf-ws", "member": "m", "role": "r"}],
            },
            "Invalid index",
        ),
        ("firewall", {"cluster_region": "europe-west4"}, "Invalid value for variable"),
        ("initialize", {"platform_name": "development"}, "Invalid value for variable"),
    ],
)
def test_fixtures_refuse_what_upstream_refuses(module: str, variables: dict[str, Any], expected: str, tmp_path: Path, modules: dict[str, Path]) -> None:
    """What the old tfvars did (sync variables, example variables, a binding keyed by the full bucket
    name) and values upstream's validation refuses fail here too: a clean plan above means something."""
    values = tmp_path / "values.auto.tfvars.json"
    values.write_text(json.dumps({"platform_default_project_id": "my-project", **variables}))
    proc = plan(modules[module], [values])
    assert expected in proc.stdout + proc.stderr


def test_readme_passes_each_module_the_groups_it_declares() -> None:
    """The README's table of upstream modules and our files is the table these tests plan with."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("\n## On the reference architecture\n", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^ *\| `([a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE))
    ours = {m: tuple(g for g in groups if g in refarch.VARIABLE_GROUPS) for m, groups in MODULE_GROUPS.items()}
    assert {m: tuple(re.findall(r"`([a-z_]+)\.auto\.tfvars\.json`", files)) for m, files in rows.items()} == ours
