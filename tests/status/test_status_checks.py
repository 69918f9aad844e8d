"""The pure parts of `fedgen status` (issue 16): context resolution, the engine, object, workload and address
verdicts, and the text table. The real API server tests are in tests/status/test_status.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedgen.errors import InputError
from fedgen.kube import ClusterRef, parse_context_options, resolve_contexts
from fedgen.report.status import to_text
from fedgen.spec import load_federation
from fedgen.status import engine, objects, workloads
from fedgen.status.address import address_check
from fedgen.status.model import Check, ClusterStatus, Problem, StatusReport
from tests.support import OTHER_SPEC, dump_yaml

HEAD = "a" * 40


def test_contexts_follow_the_gke_convention_or_the_cluster_name() -> None:
    refs = [ClusterRef("gke-eu", "gen-proj", "europe-west4"), ClusterRef("site", "p", "r")]
    available = ["gke_gen-proj_europe-west4_gke-eu", "site", "other"]
    assert resolve_contexts(refs, available, {}, "kc") == {"gke-eu": "gke_gen-proj_europe-west4_gke-eu", "site": "site"}
    assert resolve_contexts(refs, available, {"site": "other"}, "kc")["site"] == "other"
    with pytest.raises(InputError, match=r"no context for cluster gke-eu in kc \(looked for gke_gen-proj_europe-west4_gke-eu or gke-eu\)"):
        resolve_contexts(refs[:1], ["other"], {}, "kc")
    # Without the spec (fedgen bootstrap): any one gke_*_*_<cluster>, never two.
    assert resolve_contexts([ClusterRef("gke-eu")], available, {}, "kc") == {"gke-eu": "gke_gen-proj_europe-west4_gke-eu"}
    with pytest.raises(InputError, match="several contexts"):
        resolve_contexts([ClusterRef("gke-eu")], [*available, "gke_x_y_gke-eu"], {}, "kc")


def test_context_options_name_their_cluster() -> None:
    assert parse_context_options(["ctx"], ["one"]) == {"one": "ctx"}
    assert parse_context_options(["a=ctx-a", "b=ctx-b"], ["a", "b"]) == {"a": "ctx-a", "b": "ctx-b"}
    for bad, message in ((["ctx"], "say which one"), (["c=x"], "no cluster 'c'"), (["a="], "empty"), (["a=x", "a=y"], "two contexts")):
        with pytest.raises(InputError, match=message):
            parse_context_options(bad, ["a", "b"])


def _rootsync(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"git": {"repo": "r", "revision": "main", "dir": "clusters/c"}},
        "status": {"observedGeneration": 2, **status},
    }


def test_config_sync_verdicts() -> None:
    git = {"repo": "r", "revision": "main", "dir": "clusters/c"}
    ok, facts = engine.config_sync(_rootsync(source={"commit": HEAD}, sync={"commit": HEAD}), cluster="c", head=HEAD, expected_git=git)
    assert ok.ok and ok.detail == f"RootSync fedgen synced {HEAD[:12]} (HEAD)" and facts["engine"]["syncedCommit"] == HEAD
    missing, _ = engine.config_sync(None, cluster="c", head=HEAD, expected_git=git)
    assert [p.fix for p in missing.problems] == ["run `fedgen bootstrap c` (Config Sync must be installed on the cluster)"]
    elsewhere, _ = engine.config_sync(
        _rootsync(source={"commit": HEAD}, sync={"commit": HEAD}), cluster="c", head=HEAD, expected_git={**git, "dir": "clusters/d"}
    )
    assert [p.message for p in elsewhere.problems] == ["RootSync fedgen points elsewhere than the repo renders (dir='clusters/c')"]
    stalled = _rootsync(sync={"commit": HEAD}, conditions=[{"type": "Stalled", "status": "True", "message": "no  permission"}])
    assert [p.message for p in engine.config_sync(stalled, cluster="c", head=HEAD, expected_git=git)[0].problems] == [
        "the RootSync reconciler is stalled: no permission"
    ]
    unreconciled = {"metadata": {}, "spec": {"git": git}}
    assert "has no status" in engine.config_sync(unreconciled, cluster="c", head=HEAD, expected_git=git)[0].problems[0].message


def test_argocd_verdicts() -> None:
    app = {"status": {"sync": {"status": "Synced", "revision": HEAD}, "health": {"status": "Healthy"}}}
    ok, _ = engine.argocd({"a": app}, cluster="c", head=HEAD)
    assert ok.ok
    failed = {
        "status": {
            **app["status"],
            "operationState": {"phase": "Failed", "message": "one or more objects failed"},
            "conditions": [{"type": "ComparisonError", "message": "boom"}],
        }
    }
    messages = [p.message for p in engine.argocd({"a": failed, "b": None}, cluster="c", head=HEAD)[0].problems]
    assert messages == [
        "Application a: ComparisonError: boom",
        "Application a: the last sync failed: one or more objects failed",
        "Argo CD has no Application b",
    ]


def _obj(managers: list[tuple[str, str, str]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    fields = [{"manager": m, "operation": op, **({"subresource": sub} if sub else {})} for m, op, sub in managers]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n", "managedFields": fields, "annotations": annotations or {}}}


def test_other_managers_are_appliers_hand_edits_and_other_syncs() -> None:
    mine = ("configsync.gke.io", "Apply", "")
    assert objects.other_managers(_obj([mine, ("kube-controller-manager", "Update", ""), ("kubelet", "Update", "status")]), "config-sync", "c") == []
    assert objects.other_managers(_obj([mine, ("kubectl-edit", "Update", ""), ("argocd-controller", "Apply", "")]), "config-sync", "c") == [
        "argocd-controller (Apply)",
        "kubectl-edit (Update)",
    ]
    assert objects.other_managers(_obj([mine], {"configsync.gke.io/manager": ":root"}), "config-sync", "c") == ["RootSync root-sync"]
    assert objects.other_managers(_obj([mine], {"configsync.gke.io/manager": ":root_fedgen"}), "config-sync", "c") == []
    assert objects.other_managers(_obj([mine], {"configsync.gke.io/manager": "team_repo-sync"}), "config-sync", "c") == ["RepoSync team/repo-sync"]
    tracked = _obj([("argocd-controller", "Apply", "")], {"argocd.argoproj.io/tracking-id": "platform:/ConfigMap:n/x"})
    assert objects.other_managers(tracked, "argocd", "c") == ["Argo CD Application platform"]
    check, facts = objects.objects_check(
        [_obj([])], {objects.identity(_obj([])): _obj([("python", "Update", "")])}, engine="config-sync", cluster="c", unserved=[]
    )
    assert facts["objects"]["notAppliedByEngine"] == ["ConfigMap n/x"] and not check.ok


def _deployment(digest: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "namespace": "n", "generation": 3},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"run": "d"}},
            "template": {"metadata": {"annotations": {"fedgen.dev/kit-digest": digest}}, "spec": {"containers": [{"image": "i"}]}},
        },
        "status": status,
    }


def test_deployment_verdicts() -> None:
    rendered = _deployment("new")
    good = _deployment("new", observedGeneration=3, updatedReplicas=1, availableReplicas=1)
    assert workloads.deployment_check(rendered, good, [])[0].detail == "1/1 available, kit new, 0 restarts"
    old = workloads.deployment_check(rendered, _deployment("old", observedGeneration=3, updatedReplicas=1, availableReplicas=1), [])[0]
    assert [p.message for p in old.problems] == ["Deployment n/d runs kit old, the repo renders kit new"]
    stuck = _deployment(
        "new", observedGeneration=3, updatedReplicas=1, conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]
    )
    assert [p.message.split(":")[0] for p in workloads.deployment_check(rendered, stuck, [])[0].problems] == [
        "Deployment n/d exceeded its progress deadline",
        "Deployment n/d is unavailable",
    ]
    assert workloads.pod_selector(rendered) == "run=d"


def test_sealed_secret_verdicts() -> None:
    built = {"metadata": {"name": "s", "namespace": "n"}}
    assert workloads.sealed_secret_check(
        built, {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [{"type": "Synced", "status": "True"}]}}
    )[0].ok
    old = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "conditions": [{"type": "Synced", "status": "True"}]}}
    assert "has not unsealed the current version" in workloads.sealed_secret_check(built, old)[0].problems[0].message
    assert "no Synced condition" in workloads.sealed_secret_check(built, {"metadata": {}})[0].problems[0].message


@pytest.fixture
def federation(tmp_path: Path, sealing_keypair: tuple[Path, Path]) -> Any:
    def make(**server: Any) -> Any:
        data = {**OTHER_SPEC, "spec": {**OTHER_SPEC["spec"], "server": {**OTHER_SPEC["spec"]["server"], **server}}}
        (tmp_path / "sealing.pem").write_bytes(sealing_keypair[1].read_bytes())
        dump_yaml(data, tmp_path / "f.yaml")
        return load_federation(tmp_path / "f.yaml")

    return make


def test_address_matches_by_name_resolution_or_equality(federation: Any) -> None:
    service = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}}
    fed = federation()
    resolves = {"fl.genomics.example.org": ["203.0.113.9"]}
    check, facts = address_check(fed, service, lambda host: resolves.get(host))
    assert check.ok and facts["address"]["value"] == "203.0.113.9" and "fl.genomics.example.org resolves to it" in check.detail
    wrong, _ = address_check(fed, service, lambda host: ["198.51.100.1"])
    assert [p.fix for p in wrong.problems] == ["point the DNS record fl.genomics.example.org at 203.0.113.9"]
    unresolved, _ = address_check(fed, service, lambda host: None)
    assert [p.fix for p in unresolved.problems] == ["create the DNS record fl.genomics.example.org -> 203.0.113.9"]
    by_hostname = {"status": {"loadBalancer": {"ingress": [{"hostname": "fl.genomics.example.org"}]}}}
    assert address_check(fed, by_hostname, lambda host: None)[0].ok
    declared, _ = address_check(federation(externalAddress="198.51.100.7"), service, lambda host: resolves.get(host))
    assert [p.message for p in declared.problems] == ["server.externalAddress is 198.51.100.7, the cluster gave 203.0.113.9"]
    lb = federation(exposure="loadbalancer")
    assert address_check(lb, service, lambda host: resolves.get(host))[1]["address"]["service"] == "fl-genomics/flserver"


def test_text_table_lists_every_check_then_each_problem_with_its_fix() -> None:
    report = StatusReport("fed", HEAD, (
        ClusterStatus("c1", "ctx", "https://x", (Check("engine", "synced"), Check("objects", "1/2 present", (Problem("gone", "wait"),)))),
        ClusterStatus("c2", "ctx2", "", unreachable=("cluster c2 is unreachable: refused",)),
    ))  # fmt: skip
    assert report.exit_code == 3 and not report.ready
    assert to_text(report).splitlines() == [
        "CLUSTER  CHECK       STATE  DETAIL",
        "c1       engine      ok     synced",
        "c1       objects     FAIL   1/2 present",
        "c2       connection  DOWN   cluster c2 is unreachable: refused",
        "",
        "problems:",
        "- c1 objects: gone",
        "  fix: wait",
        "- c2 connection: cluster c2 is unreachable: refused",
        "  fix: check the network path, the kubeconfig context (or admin kit) and its credentials",
        "",
        "not ready: 2 problems",
    ]
