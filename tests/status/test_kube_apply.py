"""Issue 16: every rendered variant is applied to a real kube-apiserver (server-side apply, strict field
validation, after the CRDs made from the schemas fedgen ships): nothing is rejected, applying again changes
nothing (`kubectl diff --server-side` is empty), and switching exposure or engine, applied with a prune of
what is no longer rendered, leaves exactly the new set of objects.

What is applied per cluster is everything a render makes for it: the sync root (clusters/<c>, built as the
engine builds it), the bootstrap folder the operator applies once, and for Argo CD the apps folder its root
Application syncs. The namespaces the platform owns (config-management-system, argocd, istio-ingress) are
created first, as the platform would have.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedgen.cli import main
from tests.kubeapi.cluster import APPLYSET_PARENT, ARGOCD, CONFIG_SYNC, Kubectl, apply_tree, build, identity
from tests.kubeapi.server import ApiServer, Clusters

SpecWriter = Callable[..., Path]
APPLYSET = f"{APPLYSET_PARENT}/fedgen"  # the parent object kubectl's prune records the set in


def _render(spec: Path) -> Path:
    repo = spec.parent.parent
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    return repo


def rendered_objects(repo: Path, cluster: str) -> list[dict[str, Any]]:
    """Everything the render makes for one cluster, as the engine and the operator apply it."""
    folders = [repo / "clusters" / cluster, repo / "clusters" / cluster / "bootstrap"]
    if (repo / "clusters" / cluster / "bootstrap" / "apps").is_dir():
        folders.append(repo / "clusters" / cluster / "bootstrap" / "apps")
    objects = [o for folder in folders for o in build(folder)]
    idents = [identity(o) for o in objects]
    assert len(idents) == len(set(idents)), "an object is rendered twice"
    return objects


def _manager(objects: list[dict[str, Any]]) -> str:
    return ARGOCD if any(o["kind"] == "Application" for o in objects) else CONFIG_SYNC


def apply_and_recheck(api: ApiServer, objects: list[dict[str, Any]]) -> Kubectl:
    """Apply (nothing may be rejected), then apply again (a no-op) and diff (empty)."""
    kubectl = Kubectl(api.folder / "kubeconfig")
    manager = _manager(objects)
    apply_tree(kubectl, objects, manager=manager)
    for obj in objects:
        meta = obj["metadata"]
        live = kubectl.get(f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"], meta["name"], meta.get("namespace"))
        assert live is not None, f"{obj['kind']} {meta.get('namespace')}/{meta['name']} was applied but is not there"
    again = kubectl.apply(objects, manager=manager)
    assert all(line.endswith("serverside-applied") for line in again.stdout.splitlines()), again.stdout
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    diff = kubectl("diff", "--server-side", f"--field-manager={manager}", "-f", "-", input=text, check=False)
    assert diff.returncode == 0 and diff.stdout == "", f"applying the same tree again would change:\n{diff.stdout}\n{diff.stderr}"
    return kubectl


def _loadbalancer(d: dict[str, Any]) -> None:
    d["spec"]["server"]["exposure"] = "loadbalancer"


def _argocd(d: dict[str, Any]) -> None:
    d["spec"]["gitops"]["engine"] = "argocd"


def _enrolled_site(d: dict[str, Any]) -> None:
    d["spec"]["sites"].append({"name": "site-c", "org": "hospital_c", "enrollment": "request"})


@pytest.mark.parametrize(
    "variant, edit",
    [("gateway", None), ("loadbalancer", _loadbalancer), ("argocd", _argocd), ("enrolled-site", _enrolled_site)],
)
def test_each_variant_applies_cleanly_and_reapplies_as_a_no_op(variant: str, edit: Any, write_spec: SpecWriter, kube_api: Clusters) -> None:
    repo = _render(write_spec(edit))
    objects = rendered_objects(repo, "gke-eu")
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "SealedSecret", "Service", "ConfigMap", "NetworkPolicy"} <= kinds
    assert ("Application" in kinds) == (variant == "argocd") and ("RootSync" in kinds) == (variant != "argocd")
    apply_and_recheck(kube_api(variant), objects)


def _imaging(d: dict[str, Any]) -> None:
    d["metadata"]["name"] = "imaging"
    d["spec"]["server"].update(name="imgserver", tenant="fl-imaging", ports={"fl": 9202, "admin": 9203}, hostNames=["imgserver"])
    d["spec"]["sites"] = [{"name": "site-x", "org": "hospital_x"}]


def test_two_federations_in_one_repo_apply_together(write_spec: SpecWriter, kube_api: Clusters) -> None:
    _render(write_spec())
    repo = _render(write_spec(_imaging, name="imaging.yaml"))
    objects = rendered_objects(repo, "gke-eu")
    servers = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert servers == {"nvflare-flserver", "nvflare-imgserver"}
    apply_and_recheck(kube_api("two-federations"), objects)


def test_site_cluster_and_server_cluster_each_apply(write_spec: SpecWriter, kube_api: Clusters) -> None:
    def site_cluster(d: dict[str, Any]) -> None:
        d["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "sealing.pem"}})
        d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"
        d["spec"]["server"]["externalAddress"] = "203.0.113.10"

    repo = _render(write_spec(site_cluster))
    site_objects = rendered_objects(repo, "gke-hosp-a")
    assert {o["kind"] for o in site_objects} >= {"Namespace", "Deployment", "SealedSecret", "NetworkPolicy", "RootSync"}
    apply_and_recheck(kube_api("server-cluster"), rendered_objects(repo, "gke-eu"))
    apply_and_recheck(kube_api("site-cluster"), site_objects)
    # What every cluster fixture relies on: stop() ends exactly the processes it started (etcd, shared by
    # the session, keeps running) and frees their ports.
    started = list(kube_api.started)
    kube_api.stop()
    for api in started:
        assert api.process is not None and api.process.popen.returncode is not None and not Path(f"/proc/{api.process.pid}").exists()
        with socket.socket() as s:
            s.bind((api.host, api.port))  # nothing listens there any more
    assert kube_api.etcd.process is not None and kube_api.etcd.process.alive()


# ------------------------------------------------------------------------------------ switching and pruning


def _applyset_members(kubectl: Kubectl, objects: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Every object on the cluster kubectl's apply set holds, found by its part-of label, whatever kind."""
    parent = kubectl.get(APPLYSET_PARENT, "fedgen")
    assert parent is not None
    label = f"applyset.kubernetes.io/part-of={parent['metadata']['labels']['applyset.kubernetes.io/id']}"
    kinds = sorted({f"{o['kind']}.{o['apiVersion'].split('/')[0]}" if "/" in o["apiVersion"] else o["kind"] for o in objects})
    listed = json.loads(kubectl("get", ",".join(kinds), "-A", "-l", label, "-o", "json").stdout)["items"]
    return {identity(o) for o in listed}


def _kubectl_tooling(kubectl: Kubectl) -> str:
    """What kubectl writes as the set's tooling (it refuses a parent whose annotation names another)."""
    return f"kubectl/{json.loads(kubectl('version', '--client', '-o', 'json').stdout)['clientVersion']['gitVersion']}"


def _apply_pruning(kubectl: Kubectl, objects: list[dict[str, Any]], manager: str) -> None:
    # kubectl never creates a custom parent itself; it wants the tooling annotation and the set's id label
    # (ApplySet KEP: applyset-<base64url(sha256(name.namespace.Kind.group))>-v1).
    digest = hashlib.sha256(b"fedgen..ApplySet.test.fedgen.invalid").digest()
    set_id = f"applyset-{base64.urlsafe_b64encode(digest).decode().rstrip('=')}-v1"
    annotations = {"applyset.kubernetes.io/tooling": _kubectl_tooling(kubectl), "applyset.kubernetes.io/contains-group-kinds": ""}
    parent = {
        "apiVersion": "test.fedgen.invalid/v1",
        "kind": "ApplySet",
        "metadata": {"name": "fedgen", "labels": {"applyset.kubernetes.io/id": set_id}, "annotations": annotations},
    }
    if kubectl.get(APPLYSET_PARENT, "fedgen") is None:
        kubectl.apply([parent], manager="fedgen-test")
    extra = ["--prune", f"--applyset={APPLYSET}"]
    apply_tree(kubectl, objects, manager=manager, extra=extra, env={"KUBECTL_APPLYSET": "true"})


def _switch(write_spec: SpecWriter, kube_api: Clusters, name: str, edits: list[Any]) -> None:
    spec = write_spec(edits[0])
    repo = spec.parent.parent
    kubectl = Kubectl(kube_api(name).folder / "kubeconfig")
    seen: list[set[tuple[str, str, str, str]]] = []
    every: list[dict[str, Any]] = []
    for edit in edits:
        write_spec(edit)
        _render(spec)
        objects = rendered_objects(repo, "gke-eu")
        every += objects
        _apply_pruning(kubectl, objects, _manager(objects))
        expected = {identity(o) for o in objects}
        assert _applyset_members(kubectl, every) == expected, "after the prune the cluster must hold exactly the new render"
        for gone in set().union(*seen) - expected if seen else ():
            group, kind, ns, name_ = gone
            assert kubectl.get(f"{kind}.{group}" if group else kind, name_, ns or None) is None, f"{gone} was not pruned"
        seen.append(expected)
    assert seen[0] != seen[1], "the switch must change the set of objects, or the test proves nothing"


def test_switching_exposure_prunes_to_exactly_the_new_objects(write_spec: SpecWriter, kube_api: Clusters) -> None:
    _switch(write_spec, kube_api, "exposure", [None, _loadbalancer, None])


def test_switching_engine_prunes_to_exactly_the_new_objects(write_spec: SpecWriter, kube_api: Clusters) -> None:
    _switch(write_spec, kube_api, "engine", [None, _argocd])
