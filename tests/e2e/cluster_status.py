"""`fedgen status --admin` against the end-to-end federation's real NVFlare server (issue 16).

A real etcd and kube-apiserver run in the server's network namespace (the cluster's API beside its pod), on
SERVER_IP; the rendered sync root is made ready there as in tests/status/test_status.py, with the gateway's load
balancer at SERVER_IP. `fedgen status` then runs in the admin's namespace, where the dialled name resolves
to SERVER_IP as it does for the sites, with the admin's bundle: every site connected, exit 0. One site is
shut down through the FLARE API; once the server has dropped it, status names it and exits 1.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.e2e.netns import SERVER_IP
from tests.kubeapi.cluster import Kubectl, build, install_crds
from tests.kubeapi.ready import Controllers
from tests.kubeapi.server import ApiServer, Etcd

STATUS_TIMEOUT = 120.0
DROP_TIMEOUT = 60.0  # until the server no longer lists a client it shut down


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=e2e", "-c", "user.email=e2e@fedgen.invalid", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def _status(fedgen: Path, netns: str, spec: Path, repo: Path, kubeconfig: Path, bundle: Path) -> tuple[int, dict[str, Any], str]:
    argv = [
        "ip",
        "netns",
        "exec",
        netns,
        str(fedgen),
        "status",
        str(spec),
        "--repo",
        str(repo),
        "--kubeconfig",
        str(kubeconfig),
        "--admin",
        str(bundle),
        "--format",
        "json",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=STATUS_TIMEOUT)
    assert proc.stdout.startswith("{"), f"fedgen status printed no report ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def status_flow(fed: Any, fedgen: Path, admin_bundle: Path, stop_site: str) -> dict[str, Any]:
    """Runs inside main_flow while every site is connected; leaves stop_site shut down."""
    rendered, topology, work = fed.rendered, fed.topology, fed.work / "kube"
    server_ns, admin_ns = topology.server_ns, topology.legs["admin"].netns
    data = rendered.data["spec"]
    cluster = data["clusters"][0]
    etcd = Etcd(work / "etcd", netns=server_ns)
    api = ApiServer("e2e", work / "api", etcd, host=SERVER_IP)
    facts: dict[str, Any] = {}
    try:
        etcd.start()
        api.start()
        (work / "kubeconfig").mkdir()
        context = f"gke_{cluster['projectId']}_{cluster['region']}_{cluster['name']}"
        kubeconfig = api.write_kubeconfig(work / "kubeconfig" / "config", context=context)
        kubectl = Kubectl(kubeconfig, netns=admin_ns)  # the API is reached from where fedgen status runs
        repo = rendered.repo
        objects = build(repo / "clusters" / cluster["name"])
        kinds = {(o["apiVersion"].split("/")[0], o["kind"]) for o in objects if "." in o["apiVersion"].split("/")[0]}
        install_crds(kubectl, kinds=kinds | {("configsync.gke.io", "RootSync")})  # only these: CRDs are slow to install
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "render")
        head = _git(repo, "rev-parse", "HEAD")
        kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "config-management-system"}}], manager="platform")
        boot = subprocess.run(["ip", "netns", "exec", admin_ns, str(fedgen), "bootstrap", cluster["name"], "--repo", str(repo), "--kubeconfig", str(kubeconfig)],
                              capture_output=True, text=True, timeout=STATUS_TIMEOUT)  # fmt: skip
        assert boot.returncode == 0, boot.stderr
        Controllers(kubectl, head, SERVER_IP).make_ready(objects, cluster=cluster["name"])

        code, report, err = _status(fedgen, admin_ns, rendered.spec, repo, kubeconfig, admin_bundle)
        facts["ready"] = {"exit": code, "ready": report["ready"], "problems": report["problems"], "stderr": err.strip()[-2000:],
                          "sites": report["clusters"][0].get("sites"), "address": report["clusters"][0].get("address")}  # fmt: skip

        fed.admin.call("shutdown", 60, target="client", clients=[stop_site])
        deadline = time.monotonic() + DROP_TIMEOUT
        while stop_site in fed.admin.call("system_info", 15)["clients"]:
            assert time.monotonic() < deadline, f"the server still lists {stop_site} {DROP_TIMEOUT} s after shutting it down"
            time.sleep(0.5)
        code, report, err = _status(fedgen, admin_ns, rendered.spec, repo, kubeconfig, admin_bundle)
        facts["one_stopped"] = {"exit": code, "ready": report["ready"], "problems": report["problems"], "sites": report["clusters"][0].get("sites")}
    finally:
        facts["stopped"] = {"kube-apiserver": api.stop(), "etcd": etcd.stop()}
    return facts
