"""The ledger is not proof: validate renders each ledger's spec again (without the state) and compares.

Every attack here edits rendered files and then recomputes what the ledger records (digests, file list,
contributions), as a pull request can; the ledger checks alone (FG101/FG102) then stay silent.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedgen.cli import main
from fedgen.validate.engine import Report, validate
from tests.support import OTHER_SPEC
from tests.validate.support import (
    BASE_DIR,
    CLUSTER_DIR,
    FEDERATION,
    SERVER_DIR,
    SITE_DIR,
    SPEC,
    TENANT,
    WORKLOAD,
    add_resource,
    fresh,
    load,
    pristine,
)

LEDGER = f".fedgen/owned/{FEDERATION}.json"
# The example is on the reference architecture, so it has Terraform variables (a standalone cluster has none).
EXAMPLE_LEDGER = ".fedgen/owned/example_project.json"
EXAMPLE_TENANT = "fl-1"
TFVARS = "terraform/acp-dev/uc_federated_learning.auto.tfvars.json"
IMAGE = OTHER_SPEC["spec"]["nvflare"]["image"]
# Pinned by digest like the spec's, so only the registry differs (a mutable tag would add FG711).
FOREIGN_IMAGE = "registry.example.net/x/nvflare:2.9.0@sha256:" + "ab" * 32
CLUSTER_ADMIN = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: fl-ksa-cluster-admin
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
  - kind: ServiceAccount
    name: fl-ksa
    namespace: fl-genomics
"""


def _replace(repo: Path, path: str, old: str, new: str) -> None:
    """A textual hand edit (the file keeps its layout, so only the edited field differs)."""
    text = (repo / path).read_text()
    assert old in text, (path, old)
    (repo / path).write_text(text.replace(old, new, 1))


def _forge_ledger(repo: Path, change: Callable[[dict[str, Any]], None] = lambda d: None, ledger_path: str = LEDGER) -> None:
    """What a pull request can do to the ledger: change it, then record every listed file's digest."""
    ledger = json.loads((repo / ledger_path).read_text())
    change(ledger)
    ledger["files"] = {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in sorted(ledger["files"])}
    (repo / ledger_path).write_text(json.dumps(ledger, indent=2, sort_keys=True) + "\n")


def _found(report: Report) -> list[tuple[str, str, str | None, str]]:
    return [(f.rule, f.path, f.object, f.pointer) for f in report.findings]


def _rules(report: Report) -> set[str]:
    return {f.rule for f in report.findings}


def test_a_cluster_admin_binding_added_to_a_tenant_folder_is_found(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    (repo / BASE_DIR / "rbac.yaml").write_text(CLUSTER_ADMIN)
    add_resource(repo, BASE_DIR, "rbac.yaml")
    _forge_ledger(repo, lambda d: d["files"].__setitem__(f"{BASE_DIR}/rbac.yaml", ""))
    report = validate(repo=repo)
    assert not _rules(report) & {"FG101", "FG102"}  # the forged ledger alone vouches for the edit
    found = _found(report)
    assert ("FG123", f"{BASE_DIR}/rbac.yaml", "ClusterRoleBinding/fl-ksa-cluster-admin", "") in found
    assert ("FG121", LEDGER, None, f"/files/{BASE_DIR.replace('/', '~1')}~1rbac.yaml") in found
    assert any(f[:2] == ("FG120", f"{BASE_DIR}/kustomization.yaml") for f in found)
    assert report.exit_code == 1


def test_the_same_binding_in_an_unlisted_file_is_found(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    (repo / CLUSTER_DIR / "rbac.yaml").write_text(CLUSTER_ADMIN)
    add_resource(repo, CLUSTER_DIR, "rbac.yaml")  # a shared file: its digest is recomputed from contributions
    _forge_ledger(repo)
    report = validate(repo=repo)
    found = _found(report)
    assert ("FG122", f"{CLUSTER_DIR}/rbac.yaml", None, "") in found
    assert ("FG123", f"{CLUSTER_DIR}/rbac.yaml", "ClusterRoleBinding/fl-ksa-cluster-admin", "") in found
    assert ("FG120", f"{CLUSTER_DIR}/kustomization.yaml", None, "/resources/2") in found


def test_a_server_image_from_another_registry_is_found(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    _replace(repo, f"{SERVER_DIR}/deployment.yaml", f"image: {IMAGE}", f"image: {FOREIGN_IMAGE}")
    _forge_ledger(repo)
    report = validate(repo=repo)
    assert not _rules(report) & {"FG101", "FG102"}
    deployment = f"Deployment/{TENANT}/{WORKLOAD}"
    image = "/spec/template/spec/containers/0/image"
    assert _found(report) == [
        ("FG120", f"{SERVER_DIR}/deployment.yaml", deployment, image),
        ("FG124", f"{SERVER_DIR}/deployment.yaml", deployment, image),
    ]
    first = report.findings[0]
    lines = (repo / SERVER_DIR / "deployment.yaml").read_text().splitlines()
    assert lines[first.line - 1].strip() == f"image: {FOREIGN_IMAGE}"
    assert f'"{FOREIGN_IMAGE}" here, where the spec renders' in first.message


def test_a_forged_contribution_is_found(tmp_path: Path) -> None:
    """The shared tfvars are recomputed from the ledgers' contributions (FG102): forge both consistently."""
    from fedgen.ledger import Contribution
    from fedgen.render.shared import shared_files

    repo = fresh("example", tmp_path)
    opened = "federated_learning_external_services_allowed_namespaces"

    def forge(ledger: dict[str, Any]) -> None:
        ledger["contributions"][0]["tfvars"][TFVARS][opened] = [EXAMPLE_TENANT]
        forged = shared_files([Contribution.from_json(c) for c in ledger["contributions"]])
        (repo / TFVARS).write_bytes(forged[TFVARS])

    _forge_ledger(repo, forge, EXAMPLE_LEDGER)
    assert json.loads((repo / TFVARS).read_text())[opened] == [EXAMPLE_TENANT]
    report = validate(repo=repo)
    assert not _rules(report) & {"FG101", "FG102"}
    escaped = TFVARS.replace("/", "~1")
    assert sorted((f.rule, f.path, f.object, f.pointer) for f in report.findings if f.severity == "error") == [
        ("FG120", TFVARS, None, f"/{opened}/0"),
        ("FG121", EXAMPLE_LEDGER, None, f"/contributions/0/tfvars/{escaped}/{opened}/0"),
    ]


def test_an_extra_file_in_an_owned_folder_is_found(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    (repo / SERVER_DIR / "notes.txt").write_text("kept here by hand\n")
    (repo / f"tenants/{TENANT}/extra").mkdir()
    (repo / f"tenants/{TENANT}/extra/cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: fl-genomics\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.txt").write_text("outside the folders fedgen owns: fine\n")
    report = validate(repo=repo)
    assert _found(report) == [
        ("FG122", f"tenants/{TENANT}/extra/cm.yaml", None, ""),
        ("FG122", f"{SERVER_DIR}/notes.txt", None, ""),
    ]


def test_nvflare_kit_files_and_the_kit_digest_are_checked(tmp_path: Path) -> None:
    """NVFlare's own kit files (here its logging configuration) and the digest derived from the kit."""
    repo = fresh("ranged", tmp_path)
    path = f"{SERVER_DIR}/configmaps.yaml"
    _replace(repo, path, '"disable_existing_loggers": false', '"disable_existing_loggers": true')
    digest = next(line for line in (repo / SERVER_DIR / "deployment.yaml").read_text().splitlines() if "kit-digest" in line)
    _replace(repo, f"{SERVER_DIR}/deployment.yaml", digest, digest[:-4] + "beef")
    _forge_ledger(repo)
    found = _found(validate(repo=repo))
    assert found == [
        ("FG120", path, f"ConfigMap/{TENANT}/{WORKLOAD}-local", "/data/log_config.json.default"),
        ("FG120", f"{SERVER_DIR}/deployment.yaml", f"Deployment/{TENANT}/{WORKLOAD}", "/spec/template/metadata/annotations/fedgen.dev~1kit-digest"),
    ]


def test_certificates_and_ciphertext_are_taken_from_the_repo(tmp_path: Path) -> None:
    """What needs the state cannot be rendered again: a consistent change of it (new ciphertext and the
    kit digest that follows) is no FG120 finding; the secrets and consistency rules judge those values."""
    from fedgen.render.pod import kit_digest

    repo = fresh("ranged", tmp_path)
    sealed = f"{SERVER_DIR}/sealed-secret.yaml"
    [secret] = load(repo, sealed)
    old = secret["spec"]["encryptedData"]["server.key"]
    new = old[:-8] + ("AAAAAAAA" if not old.endswith("AAAAAAAA") else "BBBBBBBB")
    _replace(repo, sealed, old, new)
    configmaps = load(repo, f"{SERVER_DIR}/configmaps.yaml")
    [deployment] = load(repo, f"{SERVER_DIR}/deployment.yaml")
    before = deployment["spec"]["template"]["metadata"]["annotations"]["fedgen.dev/kit-digest"]
    _replace(repo, f"{SERVER_DIR}/deployment.yaml", before, kit_digest(configmaps, {"server.key": new}))
    _forge_ledger(repo)
    assert not _rules(validate(repo=repo)) & {"FG120", "FG121", "FG122", "FG123", "FG124", "FG125"}


def test_old_ledgers_and_broken_specs_are_findings_not_crashes(tmp_path: Path) -> None:
    repo = fresh("ranged", tmp_path)
    ledger = json.loads((repo / LEDGER).read_text())
    (repo / LEDGER).write_text(json.dumps({"files": ledger["files"], "spec": SPEC}))  # no federation, no contributions
    report = validate(repo=repo)
    messages = {(f.rule, f.pointer) for f in report.findings}
    assert ("FG121", "/contributions/0") in messages and report.exit_code == 1
    (repo / SPEC).write_text((repo / SPEC).read_text().replace("fl: 9102", "fl: nine"))
    report = validate(repo=repo)
    assert "FG106" in _rules(report) and not _rules(report) & {"FG120", "FG125"}
    forged = {**ledger["contributions"][0], "gitops": {}}  # the shared files cannot be made from it
    (repo / LEDGER).write_text(json.dumps({**ledger, "contributions": [forged]}))
    assert "FG106" in _rules(validate(repo=repo))
    (repo / LEDGER).write_text('{"files": ["not", "a", "mapping"]}')
    assert _rules(validate(repo=repo)) >= {"FG104"}


def test_a_failed_rerender_is_an_error_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fedgen.provision import runner, static

    repo = fresh("ranged", tmp_path)
    monkeypatch.setattr(static, "_ANSWERS", {})
    monkeypatch.setattr(static, "_HINTS", {})

    def cannot_start() -> None:
        raise OSError("no processes left")

    monkeypatch.setattr(runner, "spawn_worker", cannot_start)
    report = validate(repo=repo)
    [failed] = [f for f in report.findings if f.rule == "FG125"]
    assert failed.path == LEDGER and "no processes left" in failed.message
    assert report.exit_code == 1


def test_two_federations_in_one_repo_validate_clean(write_spec: Callable[..., Path]) -> None:
    def imaging(d: dict[str, Any]) -> None:
        d["metadata"]["name"] = "imaging"
        d["spec"]["server"].update(name="imgserver", tenant="fl-imaging", ports={"fl": 9202, "admin": 9203}, hostNames=["imgserver"])
        d["spec"]["sites"] = [{"name": "site-x", "org": "hospital_x"}]

    genomics = write_spec()
    other = write_spec(imaging, name="imaging.yaml")
    repo = genomics.parent.parent
    for spec in (genomics, other):
        result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
        assert result.exit_code == 0, result.output
    report = validate(repo=repo)
    assert [(f.rule, f.path, f.message) for f in report.findings] == []
    assert report.sync_roots == ("clusters/gke-eu",)


@pytest.mark.parametrize("kind", ["ranged", "sites"])
def test_stand_in_kits_have_the_files_of_real_kits(kind: str) -> None:
    """NVFlare's static files plus certificate_files are exactly a real kit's files, and the static ones
    are byte-identical to a real provisioning's (the kits validate renders with are the real ones)."""
    from fedgen.provision import provision
    from fedgen.provision.lighter import static_kits
    from fedgen.provision.static import certificate_files, static_request
    from fedgen.spec import load_federation
    from fedgen.state.document import StateDocument

    fed = load_federation(pristine(kind) / SPEC)
    request = static_request(fed)
    static = static_kits(copy.deepcopy(request))
    real = provision(fed.provisioned, StateDocument(), kits_for=request["names"]).kits
    assert sorted(static) == sorted(real) == sorted(request["names"])
    if kind == "sites":
        assert f"{SITE_DIR}".rsplit("/", 1)[-1] in static
    for name, kit in real.items():
        stand_ins = certificate_files(name == fed.server.name)
        assert sorted([*static[name], *stand_ins]) == sorted(kit)
        assert {p: f.data for p, f in kit.items() if p not in stand_ins} == static[name]


def test_the_kinds_validate_expects_are_those_of_the_rendered_files(write_spec: Callable[..., Path]) -> None:
    """FG123's kinds are read off the rendered objects, not parsed back from the files: the same set."""
    from fedgen.validate.collect.collector import collect_model
    from fedgen.validate.kubeconform import DEFAULT_KUBERNETES_VERSION
    from fedgen.validate.model import identity, is_object
    from fedgen.validate.yamlsource import load_all_plain

    spec = write_spec()
    repo = spec.parent.parent
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    rendered = collect_model(repo, kubernetes_version=DEFAULT_KUBERNETES_VERSION).rerender
    parsed = {
        identity(doc)[:2]
        for path, data in rendered.files.items()
        if path.endswith((".yaml", ".yml"))
        for doc in load_all_plain(data.decode())
        if is_object(doc)
    }
    assert rendered.kinds == parsed
    assert {("apps", "Deployment"), ("", "Service"), ("bitnami.com", "SealedSecret")} <= rendered.kinds


def test_the_worker_makes_the_static_kits_while_the_caller_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """StaticKits.ask sends the request at once: the worker answers and exits before anyone waits for it,
    and the answer is NVFlare's own static files."""
    from fedgen.provision import static
    from fedgen.provision.lighter import static_kits
    from fedgen.spec import load_federation

    monkeypatch.setattr(static, "_ANSWERS", {})
    monkeypatch.setattr(static, "_HINTS", {})
    request = static.static_request(load_federation(pristine("sites") / SPEC))
    with static.StaticKits(["the spec"]) as kits:
        answers = kits.ask([("the spec", request)])
        assert kits.proc is not None
        assert kits.proc.wait(timeout=120) == 0  # replied and gone, nobody reading yet
        assert answers() == [static_kits(copy.deepcopy(request))]
    assert static.StaticKits(["the spec"]).proc is None  # answered before: no worker started again
