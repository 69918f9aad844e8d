"""Issue 16: `fedgen status` against a real kube-apiserver, and `fedgen bootstrap`, `client-bundle
--server-address from-cluster`.

Each test gets a fresh API server; `ready()` makes the federation ready there the way the real parts would:
`fedgen bootstrap` applies the RootSync, the sync root is server-side applied with Config Sync's field manager
(configsync.gke.io), and the statuses a reconciler, kubelet, load balancer and the Sealed Secrets controller
would write are written through the status subresources. Each not-ready test then breaks one thing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fedgen.cli import main
from tests.kubeapi.cluster import ARGOCD, CONFIG_SYNC, Kubectl, apply_tree, build
from tests.kubeapi.ready import Controllers
from tests.kubeapi.server import ApiServer, Authority, write_kubeconfig
from tests.support import OTHER_SPEC, dump_yaml, refusing_port

CLUSTER = "gke-eu"
CONTEXT = "gke_gen-proj_europe-west4_gke-eu"  # what `gcloud container clusters get-credentials` names it
ADDRESS = "127.0.0.1"  # the gateway's "load balancer" IP: sites dial localhost, which resolves to it
SERVER = "fl-genomics/nvflare-flserver"
PLATFORM = {"config-sync": "config-management-system", "argocd": "argocd"}  # where each engine runs


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def render_repo(folder: Path, sealing_cert: Path, edit: Any = None) -> tuple[Path, Path, str]:
    """(spec, repo, HEAD): OTHER_SPEC with sites dialling localhost, rendered and committed."""
    repo = folder / "repo"
    (repo / "spec").mkdir(parents=True)
    (repo / "spec" / "sealing.pem").write_bytes(sealing_cert.read_bytes())
    data = json.loads(json.dumps(OTHER_SPEC))
    data["spec"]["server"]["hostNames"] = ["localhost", "flserver"]
    if edit:
        edit(data)
    spec = repo / "spec" / "federation.yaml"
    dump_yaml(data, spec)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the spec")  # the commit before the render: what "an old commit" syncs
    result = CliRunner().invoke(main, ["render", str(spec), "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "render")
    return spec, repo, _git(repo, "rev-parse", "HEAD")


@dataclass
class World:
    spec: Path
    repo: Path
    head: str
    api: ApiServer
    kubeconfig: Path
    kubectl: Kubectl
    controllers: Controllers

    def status(self, *extra: str) -> tuple[Result, dict[str, Any] | None]:
        result = CliRunner().invoke(
            main, ["status", str(self.spec), "--repo", str(self.repo), "--kubeconfig", str(self.kubeconfig), "--format", "json", *extra]
        )
        data = json.loads(result.stdout) if result.stdout.startswith("{") else None
        return result, data


def bootstrap(repo: Path, kubeconfig: Path, cluster: str = CLUSTER, *context: str) -> Result:
    result = CliRunner().invoke(main, ["bootstrap", cluster, "--repo", str(repo), "--kubeconfig", str(kubeconfig), *context])
    assert result.exit_code == 0, result.output
    return result


def setup_world(tmp_path: Path, api: ApiServer, sealing_cert: Path, *, edit: Any = None, engine: str = "config-sync") -> World:
    """A rendered, committed repo whose federation is ready on api (context CONTEXT in its own kubeconfig)."""
    spec, repo, head = render_repo(tmp_path, sealing_cert, edit)
    (tmp_path / "kube").mkdir()
    kubeconfig = api.write_kubeconfig(tmp_path / "kube" / "config", context=CONTEXT)
    kubectl = Kubectl(kubeconfig)
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLATFORM[engine]}}], manager="platform")
    bootstrap(repo, kubeconfig)
    if engine == "argocd":  # what the root Application syncs
        apply_tree(kubectl, build(repo / "clusters" / CLUSTER / "bootstrap" / "apps"), manager=ARGOCD)
    controllers = Controllers(kubectl, head, ADDRESS)
    controllers.make_ready(build(repo / "clusters" / CLUSTER), cluster=CLUSTER, engine=engine)
    return World(spec, repo, head, api, kubeconfig, kubectl, controllers)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, kube_api_module: Any, sealing_keypair: tuple[Path, Path]) -> World:
    return setup_world(tmp_path_factory.mktemp("status"), kube_api_module("status"), sealing_keypair[1])


@pytest.fixture
def world(shared: World) -> Iterator[World]:
    """The module's ready federation. Each test breaks one thing; afterwards the controllers make it ready
    again, and the next test starts by checking that it is (so a check that reports more than its one cause,
    or a repair that does not take, fails loudly)."""
    result, data = shared.status()
    assert result.exit_code == 0 and data is not None and data["ready"], f"not ready before the test: {result.output}"
    yield shared
    shared.controllers.make_ready(build(shared.repo / "clusters" / CLUSTER), cluster=CLUSTER)


def _problems(data: dict[str, Any]) -> list[str]:
    return [f"{p['check']}: {p['message']}" for p in data["problems"]]


# ------------------------------------------------------------------------------------------------ ready


def test_ready_federation_exits_0_and_prints_the_address(world: World) -> None:
    result, data = world.status()
    assert result.exit_code == 0, result.output
    assert data is not None and data["ready"] is True and data["problems"] == []
    (cluster,) = data["clusters"]
    assert cluster["name"] == CLUSTER and cluster["context"] == CONTEXT and cluster["server"] == world.api.url
    assert cluster["address"] == {"service": "istio-ingress/nvflare-fl-genomics", "value": ADDRESS, "dials": "localhost:9102", "matches": True}
    assert cluster["engine"]["syncedCommit"] == world.head
    assert cluster["objects"]["missing"] == [] and cluster["objects"]["otherManagers"] == {}
    names = [c["name"] for c in cluster["checks"]]
    assert names == ["engine", "objects", f"deployment {SERVER}", "sealedsecret fl-genomics/nvflare-flserver-key", "address"]
    text = CliRunner().invoke(main, ["status", str(world.spec), "--repo", str(world.repo), "--kubeconfig", str(world.kubeconfig)])
    assert text.exit_code == 0, text.output
    rows = {line.split()[1]: line.split(None, 3) for line in text.stdout.splitlines()[1:] if line.startswith(CLUSTER)}
    assert rows["address"] == [
        CLUSTER,
        "address",
        "ok",
        f"{ADDRESS} via istio-ingress/nvflare-fl-genomics; sites dial localhost:9102 (localhost resolves to it)",
    ]
    print(text.stdout)
    assert text.stdout.rstrip().endswith(f"ready: genomics runs HEAD {world.head[:12]}")


def test_bootstrap_applies_once_then_changes_nothing(world: World) -> None:
    live = world.kubectl.get("rootsync", "fedgen", "config-management-system")
    assert live is not None and live["spec"]["git"]["dir"] == f"clusters/{CLUSTER}"
    assert [m["manager"] for m in live["metadata"]["managedFields"] if not m.get("subresource")] == ["fedgen"]
    again = bootstrap(world.repo, world.kubeconfig)
    assert again.stdout == "unchanged\tRootSync config-management-system/fedgen\n"
    assert f"(context {CONTEXT}, {world.api.url})" in again.stderr


def test_client_bundle_takes_the_server_address_from_the_cluster(world: World, tmp_path: Path) -> None:
    out = tmp_path / "site-a.tar.gz"
    result = CliRunner().invoke(main, ["client-bundle", "site-a", "--spec", str(world.spec), "--repo", str(world.repo), "--out", str(out),
                                       "--server-address", "from-cluster", "--kubeconfig", str(world.kubeconfig)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"server address from the cluster: {ADDRESS}" in result.stderr
    import tarfile

    with tarfile.open(out) as archive:
        readme = archive.extractfile("site-a/README.md")
        assert readme is not None and f"SERVER_IP={ADDRESS}" in readme.read().decode()


# -------------------------------------------------------------------------------------------- not ready


def test_sync_error_is_named(world: World) -> None:
    world.controllers.rootsync(
        synced="0" * 40, fetched=world.head, errors={"rendering": [{"code": "1068", "errorMessage": "KNV1068: kustomization.yaml in a subfolder"}]}
    )
    result, data = world.status()
    assert result.exit_code == 1 and data is not None and data["ready"] is False
    assert _problems(data) == ["engine: Config Sync failed rendering: KNV1068: kustomization.yaml in a subfolder"]


def test_old_commit_is_named(world: World) -> None:
    previous = _git(world.repo, "rev-parse", "HEAD~1")
    world.controllers.rootsync(synced=previous)
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    (problem,) = data["problems"]
    assert problem["check"] == "engine"
    assert problem["message"] == f"Config Sync applied {previous[:12]}, the repo's HEAD is {world.head[:12]}; it has fetched {previous[:12]}"
    assert problem["fix"] == "push HEAD to release of https://git.example.org/fl/genomics-gitops.git (or wait for Config Sync to fetch it)"
    world.controllers.rootsync(synced=previous, fetched=world.head)
    _, data = world.status()
    assert data is not None and [p["message"] for p in data["problems"]] == [
        f"Config Sync applied {previous[:12]}, the repo's HEAD is {world.head[:12]}; it fetched HEAD but has not applied it yet"
    ]


def test_missing_object_is_named(world: World) -> None:
    world.kubectl("delete", "configmap", "nvflare-flserver-local", "-n", "fl-genomics")
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert data["clusters"][0]["objects"]["missing"] == ["ConfigMap fl-genomics/nvflare-flserver-local"]
    assert _problems(data)[0].startswith("objects: 1 of ")
    assert "ConfigMap fl-genomics/nvflare-flserver-local" in _problems(data)[0]


def test_hand_edit_names_the_other_manager(world: World) -> None:
    world.kubectl("label", "service", "flserver", "-n", "fl-genomics", "edited=by-hand")
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == ["objects: Service fl-genomics/flserver is also managed by kubectl-label (Update)"]
    world.kubectl("label", "service", "flserver", "-n", "fl-genomics", "edited-")  # its last field: the entry goes


def test_unavailable_deployment_with_restarts(world: World) -> None:
    world.controllers.deployment("fl-genomics", "nvflare-flserver", available=0)
    (rendered,) = [o for o in build(world.repo / "clusters" / CLUSTER) if o["kind"] == "Deployment"]
    template = rendered["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nvflare-flserver-abc", "namespace": "fl-genomics", "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    world.kubectl.apply([pod], manager="kube-controller-manager")  # what the ReplicaSet controller would create
    container = template["spec"]["containers"][0]
    world.kubectl.status("pod", "nvflare-flserver-abc", "fl-genomics", {"containerStatuses": [{
        "name": container["name"], "image": container["image"], "imageID": "", "ready": False, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}, manager="kubelet")  # fmt: skip
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    (problem,) = _problems(data)
    assert problem == (f"deployment {SERVER}: Deployment {SERVER} is unavailable: 0/1 available, 4 restarts; "
                       f"nvflare-flserver-abc/{container['name']} is CrashLoopBackOff: back-off 40s restarting failed container")  # fmt: skip
    world.kubectl("delete", "pod", "nvflare-flserver-abc", "-n", "fl-genomics", "--grace-period=0", "--force")


def test_deployment_on_the_old_kit_is_named(world: World) -> None:
    (rendered,) = [o for o in build(world.repo / "clusters" / CLUSTER) if o["kind"] == "Deployment"]
    digest = rendered["spec"]["template"]["metadata"]["annotations"]["fedgen.dev/kit-digest"]
    old = json.loads(json.dumps(rendered))
    old["spec"]["template"]["metadata"]["annotations"]["fedgen.dev/kit-digest"] = "0123456789abcdef"
    world.kubectl.apply([old], manager=CONFIG_SYNC)  # what the engine applied from the previous render
    world.controllers.deployment("fl-genomics", "nvflare-flserver")
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == [f"deployment {SERVER}: Deployment {SERVER} runs kit 0123456789abcdef, the repo renders kit {digest}"]
    assert data["clusters"][0]["deployments"][SERVER]["kitDigest"] == "0123456789abcdef"


def test_rollout_in_progress_is_named(world: World) -> None:
    gen = world.controllers.generation("deployment", "nvflare-flserver", "fl-genomics")
    world.kubectl.status(
        "deployment",
        "nvflare-flserver",
        "fl-genomics",
        {"observedGeneration": gen - 1 if gen > 1 else 0, "replicas": 1, "updatedReplicas": 0, "availableReplicas": 1},
    )
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == [f"deployment {SERVER}: Deployment {SERVER} is rolling out: 0 of 1 pods run the current template"]


def test_sealed_secret_not_unsealed(world: World) -> None:
    world.kubectl.status("sealedsecret", "nvflare-flserver-key", "fl-genomics",
                         {"conditions": [{"type": "Synced", "status": "False", "message": "no key could decrypt secret (server.key)"}]}, manager="controller")  # fmt: skip
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == [
        "sealedsecret fl-genomics/nvflare-flserver-key: SealedSecret fl-genomics/nvflare-flserver-key cannot be unsealed: no key could decrypt secret (server.key)"
    ]


def test_address_pending_or_elsewhere(world: World) -> None:
    world.controllers.load_balancer("istio-ingress", "nvflare-fl-genomics", "198.51.100.20")
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    (problem,) = _problems(data)
    assert problem.startswith("address: sites dial localhost:9102, which resolves to ") and problem.endswith("not to the server's address 198.51.100.20")
    world.kubectl(
        "patch",
        "service",
        "nvflare-fl-genomics",
        "-n",
        "istio-ingress",
        "--subresource=status",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/status/loadBalancer/ingress"}]',
    )
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == ["address: Service istio-ingress/nvflare-fl-genomics has no external address yet (LoadBalancer pending)"]


# ---------------------------------------------------------------------------------------- unreachable


def test_unreachable_cluster_exits_3_naming_it(world: World, tmp_path: Path) -> None:
    with refusing_port() as port:
        closed = ApiServer("closed", world.api.folder, world.api.etcd, port=port, ca=world.api.ca, admin=world.api.admin)
        kubeconfig = write_kubeconfig(tmp_path / "config", {CONTEXT: (closed, None)})
        result = CliRunner().invoke(
            main, ["status", str(world.spec), "--repo", str(world.repo), "--kubeconfig", str(kubeconfig), "--format", "json", "--timeout", "2"]
        )
    assert result.exit_code == 3, result.output
    assert f"error: cluster {CLUSTER} (context {CONTEXT}, {closed.url}) is unreachable: " in result.stderr
    data = json.loads(result.stdout)
    assert data["ready"] is False and data["clusters"][0]["reachable"] is False
    assert [p["check"] for p in data["problems"]] == ["connection"]


def test_refused_credentials_exit_3_naming_them(world: World, tmp_path: Path) -> None:
    assert world.api.ca is not None
    strangers = {
        "401": Authority.create("someone-else").issue("intruder", organizations=("system:masters",)),  # unknown CA
        "403": world.api.ca.issue("nobody"),  # known, but RBAC grants it nothing
    }
    for code, credentials in strangers.items():
        (tmp_path / code).mkdir()
        kubeconfig = write_kubeconfig(tmp_path / code / "config", {CONTEXT: (world.api, credentials)})
        result = CliRunner().invoke(main, ["status", str(world.spec), "--repo", str(world.repo), "--kubeconfig", str(kubeconfig)])
        assert result.exit_code == 3, result.output
        what = "refused the credentials (401)" if code == "401" else "refused the request with these credentials (403, not allowed)"
        assert f"error: cluster {CLUSTER} (context {CONTEXT}, {world.api.url}) {what}: " in result.stderr


def test_nvflare_server_unreachable_exits_3_naming_it(world: World, tmp_path: Path) -> None:
    """The cluster is fine, but nothing answers where the admin's kit dials (the e2e test covers a live one)."""
    out = tmp_path / "admin.tar.gz"
    made = CliRunner().invoke(main, ["client-bundle", "lead@genomics.example.org", "--spec", str(world.spec), "--repo", str(world.repo), "--out", str(out)])
    assert made.exit_code == 0, made.output
    result, data = world.status("--admin", str(out), "--timeout", "2")
    assert result.exit_code == 3, result.output
    # NVFlare gives up after its own timeout; on a loaded machine our watchdog may fire first: either way one line.
    (line,) = result.stderr.splitlines()
    assert line in (
        "error: NVFlare server at localhost:9103: admin login failed: NoConnection: cannot connect to server for 2.0 seconds",
        "error: NVFlare server at localhost:9103: admin login did not answer within 9 s",
    )
    assert data is not None and data["clusters"][0]["reachable"] is False and data["clusters"][0]["checks"][0]["ok"] is True


def test_bad_input_exits_2(world: World, tmp_path: Path) -> None:
    def run(*args: str) -> Result:
        return CliRunner().invoke(main, ["status", str(world.spec), "--repo", str(world.repo), *args])

    unknown = run("--kubeconfig", str(world.kubeconfig), "--context", "nowhere")
    assert unknown.exit_code == 2 and f"context 'nowhere' (for cluster {CLUSTER}) is not in kubeconfig {world.kubeconfig}" in unknown.stderr
    wrong = run("--kubeconfig", str(world.kubeconfig), "--context", "gke-x=ctx")
    assert wrong.exit_code == 2 and "no cluster 'gke-x' in the federation" in wrong.stderr
    missing = run("--kubeconfig", str(tmp_path / "absent"))
    assert missing.exit_code == 2 and "cannot read kubeconfig" in missing.stderr
    not_git = CliRunner().invoke(main, ["status", str(world.spec), "--repo", str(tmp_path), "--kubeconfig", str(world.kubeconfig)])
    assert not_git.exit_code == 2 and "not a git repository" in not_git.stderr
    site_bundle = tmp_path / "nothing.tar.gz"
    site_bundle.write_bytes(b"not a tar")
    bad_admin = run("--kubeconfig", str(world.kubeconfig), "--admin", str(site_bundle))
    assert bad_admin.exit_code == 2 and "not a readable tar.gz bundle" in bad_admin.stderr


# ------------------------------------------------------------------------------- other engines, clusters


def test_argocd_federation_ready_then_out_of_sync(tmp_path: Path, kube_api: Any, sealing_keypair: tuple[Path, Path]) -> None:
    def argocd(d: dict[str, Any]) -> None:
        d["spec"]["gitops"]["engine"] = "argocd"

    world = setup_world(tmp_path, kube_api("argocd"), sealing_keypair[1], edit=argocd, engine="argocd")
    result, data = world.status()
    assert result.exit_code == 0, result.output
    assert data is not None and data["clusters"][0]["engine"]["applications"]["fedgen-gke-eu"] == {
        "present": True,
        "sync": "Synced",
        "revision": world.head,
        "health": "Healthy",
    }
    world.controllers.application("fedgen-gke-eu", sync="OutOfSync", health="Degraded", message="Deployment is unavailable")
    result, data = world.status()
    assert result.exit_code == 1 and data is not None
    assert _problems(data) == ["engine: Application fedgen-gke-eu is OutOfSync", "engine: Application fedgen-gke-eu is Degraded: Deployment is unavailable"]


def test_site_cluster_is_asked_through_its_own_context(tmp_path: Path, kube_api: Any, sealing_keypair: tuple[Path, Path]) -> None:
    def site_cluster(d: dict[str, Any]) -> None:
        d["spec"]["clusters"].append({"name": "gke-hosp-a", "projectId": "hosp-a-proj", "region": "europe-west1", "sealing": {"certificate": "sealing.pem"}})
        d["spec"]["sites"][0]["cluster"] = "gke-hosp-a"

    world = setup_world(tmp_path, kube_api("server"), sealing_keypair[1], edit=site_cluster)
    site_api = kube_api("site")
    kubeconfig = write_kubeconfig(world.kubeconfig.parent / "both", {CONTEXT: (world.api, None), "hospital-a": (site_api, None)})
    result = CliRunner().invoke(main, ["status", str(world.spec), "--repo", str(world.repo), "--kubeconfig", str(kubeconfig), "--format", "json"])
    assert result.exit_code == 2 and "no context for cluster gke-hosp-a" in result.stderr and "gke_hosp-a-proj_europe-west1_gke-hosp-a" in result.stderr
    args = ["status", str(world.spec), "--repo", str(world.repo), "--kubeconfig", str(kubeconfig), "--format", "json", "--context", "gke-hosp-a=hospital-a"]
    result = CliRunner().invoke(main, args)
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and [c["name"] for c in data["clusters"]] == [CLUSTER, "gke-hosp-a"]
    assert data["clusters"][0]["ready"] is True and data["clusters"][1]["server"] == site_api.url
    assert {p["check"] for p in data["problems"]} == {
        "engine",
        "objects",
        "deployment nvflare-site-a/nvflare-site-a",
        "sealedsecret nvflare-site-a/nvflare-site-a-key",
    }
    site = Kubectl(kubeconfig, "hospital-a")
    site.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "config-management-system"}}], manager="platform")
    bootstrap(world.repo, kubeconfig, "gke-hosp-a", "--context", "hospital-a")
    Controllers(site, world.head, ADDRESS).make_ready(build(world.repo / "clusters" / "gke-hosp-a"), cluster="gke-hosp-a")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
