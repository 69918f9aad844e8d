"""fedgen render end to end on real parts: nvflare provisioning, kubectl kustomize, kubeseal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from ruamel.yaml import YAML

from fedgen import api
from fedgen.errors import InputError
from fedgen.write import apply as apply_mod
from tests.support import kustomize_build, render_spec, tool, tree_snapshot

SpecWriter = Callable[..., Path]


def _tree(repo: Path) -> dict[str, bytes]:
    """The rendered tree: everything but the state and the spec folder the test edits."""
    return tree_snapshot(repo, exclude=(".fedgen/state", "spec"))


def _state(repo: Path) -> dict[str, Any]:
    return json.loads((repo / ".fedgen/state/genomics/state.json").read_text())


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d]


def test_render_writes_every_object_and_kustomize_builds_it(rendered: tuple[Path, Path]) -> None:
    _, repo = rendered
    built = _docs(kustomize_build(repo / "clusters/gke-eu"))
    kinds = sorted({(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in built})
    expected = {
        ("Namespace", "", "fl-genomics"),
        ("ServiceAccount", "fl-genomics", "fl-ksa"),
        ("NetworkPolicy", "fl-genomics", "default-deny-all"),
        ("NetworkPolicy", "fl-genomics", "allow-egress-to-private-google-apis"),
        ("AuthorizationPolicy", "fl-genomics", "allow-same-namespace"),
        ("Assign", "", "mutator-add-nodeaffinity-fl-genomics"),
        ("Assign", "", "mutator-add-toleration-fl-genomics"),
        ("ServiceEntry", "fl-genomics", "storage-googleapis-com"),
        ("ConfigMap", "fl-genomics", "nvflare-flserver-startup"),
        ("ConfigMap", "fl-genomics", "nvflare-flserver-local"),
        ("SealedSecret", "fl-genomics", "nvflare-flserver-key"),
        ("Service", "fl-genomics", "flserver"),
        ("Deployment", "fl-genomics", "nvflare-flserver"),
        ("DestinationRule", "fl-genomics", "flserver"),
        ("AuthorizationPolicy", "fl-genomics", "nvflare-flserver-allow-gateway"),
        ("AuthorizationPolicy", "fl-genomics", "nvflare-flserver-deny-non-gateway"),
        ("Service", "istio-ingress", "nvflare-fl-genomics"),
        ("Gateway", "istio-ingress", "nvflare-fl-genomics"),
        ("VirtualService", "istio-ingress", "nvflare-fl-genomics"),
        ("NetworkPolicy", "istio-ingress", "nvflare-fl-genomics"),
    }
    assert expected <= set(kinds), expected - set(kinds)
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in built}
    svc = by_key[("Service", "flserver")]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["tcp-flport", "tcp-adminport"]
    assert [p["port"] for p in svc["spec"]["ports"]] == [9102, 9103]
    gw_svc = by_key[("Service", "nvflare-fl-genomics")]
    assert gw_svc["spec"]["loadBalancerSourceRanges"] == ["198.51.100.7/32", "203.0.113.0/24"]
    vs = by_key[("VirtualService", "nvflare-fl-genomics")]
    assert {r["route"][0]["destination"]["host"] for r in vs["spec"]["tcp"]} == {"flserver.fl-genomics.svc.cluster.local"}
    assert all(s["port"]["protocol"] == "TCP" for s in by_key[("Gateway", "nvflare-fl-genomics")]["spec"]["servers"])
    pod = by_key[("Deployment", "nvflare-flserver")]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["startupProbe"]["tcpSocket"]["port"] == "tcp-flport"
    allow = by_key[("AuthorizationPolicy", "nvflare-flserver-allow-gateway")]["spec"]
    assert len(allow["rules"]) == 1 and allow["rules"][0]["from"][0]["source"]["namespaces"] == ["istio-ingress"]
    local = by_key[("ConfigMap", "nvflare-flserver-local")]["data"]
    assert "/workspace/nvfl/genomics/flserver/jobs-storage" in local["resources.json"]
    # Config Sync sees no terraform or bootstrap objects through the sync root.
    assert not any(d["kind"] == "RootSync" for d in built)
    bootstrap = _docs(kustomize_build(repo / "clusters/gke-eu/bootstrap"))
    assert bootstrap[0]["spec"]["git"] == {
        "auth": "none",
        "dir": "clusters/gke-eu",
        "repo": "https://git.example.org/fl/genomics-gitops.git",
        "revision": "release",
    }
    assert bootstrap[0]["spec"]["sourceFormat"] == "unstructured"


def test_no_plaintext_key_in_repo_and_state_is_owner_only(rendered: tuple[Path, Path]) -> None:
    _, repo = rendered
    for rel, data in _tree(repo).items():
        assert b"PRIVATE KEY" not in data, rel
    state_dir = repo / ".fedgen/state/genomics"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(state_dir.parent.stat().st_mode) == 0o700
    for f in state_dir.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert ".fedgen/state" not in _tree(repo)
    assert b"state/" in (repo / ".fedgen/.gitignore").read_bytes()


def test_rerender_is_byte_identical(rendered: tuple[Path, Path]) -> None:
    spec, repo = rendered
    before = _tree(repo)
    state_before = (repo / ".fedgen/state/genomics/state.json").read_bytes()
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "0 created, 0 updated, 0 deleted" in result.stderr
    assert _tree(repo) == before
    assert (repo / ".fedgen/state/genomics/state.json").read_bytes() == state_before


def test_a_no_op_render_does_not_import_nvflare(rendered: tuple[Path, Path]) -> None:
    """Nothing to issue: the kits recorded in the state are used (fedgen.provision.kitcache), in a fresh process."""
    import subprocess
    import sys

    spec, repo = rendered
    code = (
        "import sys; from pathlib import Path; from fedgen import api; "
        "r = api.render(spec=Path(sys.argv[1]), repo=Path(sys.argv[2])); "
        "print(r.plan.is_noop, r.issued, 'nvflare' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(spec), str(repo)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "()", "False"], out.stdout


def test_a_render_reads_the_repos_records_once_before_the_lock(rendered: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledgers are read once before the state is locked (preflight, the root-CA guard and a --check plan
    share them), and a render that writes reads them once more under the repo's write lock, where its plan is
    made; each SealedSecret's committed ciphertext is read once and handed to the sealing policy. (It was three
    reads of the ledgers, and the sealing policy read the repo itself.)"""
    from fedgen.api import rendering
    from fedgen.ledger import read as ledger_read

    spec, repo = rendered
    reads: list[str] = []
    read_ledger_files, read_encrypted_data = ledger_read.read_ledger_files, rendering.read_encrypted_data
    monkeypatch.setattr(ledger_read, "read_ledger_files", lambda r: reads.append("ledgers") or read_ledger_files(r))
    monkeypatch.setattr(rendering, "read_encrypted_data", lambda p: reads.append(p.relative_to(repo).as_posix()) or read_encrypted_data(p))
    sealed = "tenants/fl-genomics/nvflare-flserver/sealed-secret.yaml"
    assert api.render(spec=spec, repo=repo, check=True).plan.is_noop
    assert reads == ["ledgers", sealed]
    reads.clear()
    assert not api.render(spec=spec, repo=repo).written
    assert reads == ["ledgers", sealed, "ledgers"]


def test_adding_a_site_issues_one_certificate_and_changes_no_repo_file(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    before_tree = _tree(repo)
    before_certs = _state(repo)["nvflare_cert"]
    write_spec(lambda d: d["spec"]["sites"].append({"name": "site-c", "org": "hospital_c"}))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "issued 1 certificate: site-c" in result.stderr
    after_certs = _state(repo)["nvflare_cert"]
    changed = {k for k in set(before_certs) | set(after_certs) if before_certs.get(k) != after_certs.get(k)}
    assert changed, "the new site's certificate must land in the state"
    for key in changed:  # every changed entry belongs to site-c
        assert "site-c" in key or all(k.startswith("site-c") for k in _diff_keys(before_certs.get(key), after_certs.get(key))), key
    assert _tree(repo) == before_tree


def _diff_keys(a: Any, b: Any) -> set[str]:
    a, b = a or {}, b or {}
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_host_name_change_reissues_the_server_certificate_only(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    before_tree = _tree(repo)
    before_certs = _state(repo)["nvflare_cert"]
    write_spec(lambda d: d["spec"]["server"].__setitem__("hostNames", ["fl2.genomics.example.org"]))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "issued 1 certificate: flserver" in result.stderr
    after_certs = _state(repo)["nvflare_cert"]
    changed = _diff_keys(_flatten(before_certs), _flatten(after_certs))
    assert changed and all("flserver" in k for k in changed), changed
    after_tree = _tree(repo)
    changed_files = {p for p in set(before_tree) | set(after_tree) if before_tree.get(p) != after_tree.get(p)}
    base = "tenants/fl-genomics/nvflare-flserver"
    assert changed_files == {f"{base}/configmaps.yaml", f"{base}/sealed-secret.yaml", f"{base}/deployment.yaml", ".fedgen/owned/genomics.json"}
    startup = next(d for d in _docs((repo / f"{base}/configmaps.yaml").read_text()) if d["metadata"]["name"].endswith("startup"))
    cert = x509.load_pem_x509_certificate(startup["data"]["server.crt"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "fl2.genomics.example.org" in sans
    assert json.loads(startup["data"]["fed_server.json"])["servers"][0]["service"]["target"] == "flserver:9102"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    return {prefix: tree}


def test_kubeseal_recovers_the_server_key(write_spec: SpecWriter, sealing_keypair: tuple[Path, Path]) -> None:
    spec = write_spec()
    assert render_spec(spec).exit_code == 0
    repo = spec.parent.parent
    sealed = repo / "tenants/fl-genomics/nvflare-flserver/sealed-secret.yaml"
    proc = subprocess.run(
        [tool("kubeseal"), "--recovery-unseal", "--recovery-private-key", str(sealing_keypair[0]), "-o", "json"],
        input=sealed.read_bytes(),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    import base64

    secret = json.loads(proc.stdout)
    key_pem = base64.b64decode(secret["data"]["server.key"])
    assert key_pem.startswith(b"-----BEGIN") and b"PRIVATE KEY" in key_pem
    # It is the key that matches the server certificate shipped in the ConfigMap.
    from cryptography.hazmat.primitives import serialization

    startup = next(d for d in _docs((repo / "tenants/fl-genomics/nvflare-flserver/configmaps.yaml").read_text()) if d["metadata"]["name"].endswith("startup"))
    cert = x509.load_pem_x509_certificate(startup["data"]["server.crt"].encode())
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert secret["metadata"]["name"] == "nvflare-flserver-key" and secret["metadata"]["namespace"] == "fl-genomics"


def test_check_and_diff(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    assert render_spec(spec, "--check").exit_code == 0
    write_spec(lambda d: d["spec"]["server"].__setitem__("loadBalancerSourceRanges", ["192.0.2.0/24"]))
    before = _tree(repo)
    state_before = (repo / ".fedgen/state/genomics/state.json").read_bytes()
    result = render_spec(spec, "--check", "--diff")
    assert result.exit_code == 1, result.output
    assert any(line.startswith("+") and "192.0.2.0/24" in line for line in result.stdout.splitlines())
    assert "update\tclusters/gke-eu/istio-ingress/fl-genomics/service.yaml" in result.stdout
    assert _tree(repo) == before
    assert (repo / ".fedgen/state/genomics/state.json").read_bytes() == state_before


def test_tenant_rename_removes_own_stale_files_and_nothing_else(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    mine = repo / "tenants/fl-genomics/base/NOTES.md"
    mine.write_text("hand-written notes\n")
    write_spec(lambda d: d["spec"]["server"].__setitem__("tenant", "fl-gen2"))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    files = _tree(repo)
    assert not any(p.startswith("tenants/fl-genomics/") for p in files if p != "tenants/fl-genomics/base/NOTES.md")
    assert mine.read_text() == "hand-written notes\n"
    assert any(p.startswith("tenants/fl-gen2/") for p in files)
    assert not (repo / "clusters/gke-eu/istio-ingress/fl-genomics").exists()


def test_refuses_to_overwrite_a_hand_written_file(write_spec: SpecWriter) -> None:
    spec = write_spec()
    repo = spec.parent.parent
    target = repo / "tenants/fl-genomics/base/namespace.yaml"
    target.parent.mkdir(parents=True)
    target.write_text("# mine\n")
    before = _tree(repo)
    result = render_spec(spec)
    assert result.exit_code == 2
    assert "tenants/fl-genomics/base/namespace.yaml: exists and was not written by fedgen" in result.stderr
    assert _tree(repo) == before


def test_failure_while_staging_leaves_the_previous_tree(rendered: tuple[Path, Path], write_spec: SpecWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, repo = rendered
    before = _tree(repo)
    write_spec(lambda d: d["spec"]["server"].__setitem__("ports", {"fl": 9202, "admin": 9203}))
    real_write = apply_mod._write_file
    calls = {"n": 0}

    def failing_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(apply_mod, "_write_file", failing_write)
    with pytest.raises(Exception, match="repo is unchanged"):
        api.render(spec=spec, repo=repo)
    assert _tree(repo) == before
    monkeypatch.undo()
    assert render_spec(spec).exit_code == 0
    assert _tree(repo) != before


def test_crash_after_commit_point_rolls_forward(rendered: tuple[Path, Path], write_spec: SpecWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["spec"]["server"].__setitem__("ports", {"fl": 9202, "admin": 9203}))
    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # the journal rename is 1; die after two files moved
            raise KeyboardInterrupt("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(apply_mod.os, "replace", crashing_replace)
    with pytest.raises(KeyboardInterrupt):
        api.render(spec=spec, repo=repo)
    monkeypatch.undo()
    assert (repo / ".fedgen/journal.json").exists()
    # The next command finishes the interrupted render; the result equals a clean render.
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "completed an interrupted render" in result.stderr
    after = _tree(repo)
    clean = render_spec(spec)
    assert clean.exit_code == 0 and _tree(repo) == after
    assert not (repo / ".fedgen/journal.json").exists() and not (repo / ".fedgen/tmp").exists()


def test_state_of_another_federation_is_refused(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["metadata"].__setitem__("name", "other"))
    with pytest.raises(InputError, match="belongs to federation 'genomics'"):
        api.render(spec=spec, repo=repo, state=str(repo / ".fedgen/state/genomics"))


def test_development_sealing_key_warns(write_spec: SpecWriter) -> None:
    spec = write_spec(lambda d: d["spec"].pop("sealing"))
    result = render_spec(spec)
    assert result.exit_code == 0, result.output
    assert "warning: no sealing certificate for cluster gke-eu" in result.stderr
    state = _state(spec.parent.parent)
    assert "BEGIN" in state["sealing"]["certificate"]


def _bypass(d: dict[str, Any]) -> None:
    d["spec"]["server"]["exposure"] = "loadbalancer"


def test_bypass_exposure_renders_the_mesh_bypass(write_spec: SpecWriter) -> None:
    spec = write_spec(_bypass)
    assert render_spec(spec).exit_code == 0
    repo = spec.parent.parent
    built = {(d["kind"], d["metadata"]["name"]): d for d in _docs(kustomize_build(repo / "clusters/gke-eu"))}
    svc = built[("Service", "flserver")]["spec"]
    assert svc["type"] == "LoadBalancer" and svc["loadBalancerSourceRanges"] == ["198.51.100.7/32", "203.0.113.0/24"]
    pod = built[("Deployment", "nvflare-flserver")]["spec"]["template"]
    assert pod["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeInboundPorts"] == "9102,9103"
    pa = built[("PeerAuthentication", "nvflare-flserver")]["spec"]
    assert pa["selector"]["matchLabels"] == {"run": "nvflare-flserver"}
    assert pa["portLevelMtls"] == {"9102": {"mode": "DISABLE"}, "9103": {"mode": "DISABLE"}}
    dr = built[("DestinationRule", "flserver")]["spec"]["trafficPolicy"]["portLevelSettings"]
    assert {(p["port"]["number"], p["tls"]["mode"]) for p in dr} == {(9102, "DISABLE"), (9103, "DISABLE")}
    np = built[("NetworkPolicy", "nvflare-flserver-allow-clients")]["spec"]["ingress"][0]
    assert {b["ipBlock"]["cidr"] for b in np["from"]} == {"198.51.100.7/32", "203.0.113.0/24"}
    assert not any(ns == "istio-ingress" for ns in (d["metadata"].get("namespace") for d in built.values()))
    # A standalone cluster gets no Terraform variables (tests/render/test_terraform.py: the reference architecture's).
    assert not (repo / "terraform").exists()


def test_switching_exposure_removes_the_other_modes_objects(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    gateway_tree = _tree(repo)
    write_spec(_bypass)
    assert render_spec(spec).exit_code == 0
    bypass_tree = _tree(repo)
    assert not any(p.startswith("clusters/gke-eu/istio-ingress/") for p in bypass_tree)
    assert "tenants/fl-genomics/nvflare-flserver/authorization-policies.yaml" not in bypass_tree
    assert "tenants/fl-genomics/nvflare-flserver/peer-authentication.yaml" in bypass_tree
    write_spec()
    assert render_spec(spec).exit_code == 0
    assert _tree(repo) == gateway_tree


def test_argocd_engine_renders_applications_and_no_config_sync(rendered: tuple[Path, Path], write_spec: SpecWriter) -> None:
    spec, repo = rendered
    write_spec(lambda d: d["spec"]["gitops"].__setitem__("engine", "argocd"))
    assert render_spec(spec).exit_code == 0
    tree = _tree(repo)
    assert not any(b"kind: RootSync" in data for data in tree.values())
    root = _docs(kustomize_build(repo / "clusters/gke-eu/bootstrap"))
    assert [d["kind"] for d in root] == ["Application"]
    assert root[0]["spec"]["source"]["path"] == "clusters/gke-eu/bootstrap/apps"
    apps = {d["kind"]: d for d in _docs(kustomize_build(repo / "clusters/gke-eu/bootstrap/apps"))}
    app = apps["Application"]["spec"]
    assert app["source"] == {"path": "clusters/gke-eu", "repoURL": "https://git.example.org/fl/genomics-gitops.git", "targetRevision": "release"}
    assert app["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    project = apps["AppProject"]["spec"]
    assert {d["namespace"] for d in project["destinations"]} == {"fl-genomics", "istio-ingress"}
    built_kinds = {(d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else "", d["kind"]) for d in _docs(kustomize_build(repo / "clusters/gke-eu"))}
    allowed = {(w["group"], w["kind"]) for w in project["namespaceResourceWhitelist"] + project["clusterResourceWhitelist"]}
    assert built_kinds <= allowed, built_kinds - allowed
