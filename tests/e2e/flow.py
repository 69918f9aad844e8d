"""The end-to-end federation, shared by tests/e2e/test_e2e.py and bench/bench_e2e.py.

`Federation` renders a spec with the real `fedgen` CLI into a fresh repository, builds the sync root with
`kubectl kustomize`, runs the server from the BUILT manifests (tests/e2e/kube.py: the pod's volumes
materialised like the kubelet does, mounted at their real paths in a private mount namespace, its own command
as uid/gid 10000 in a read-only root), makes bundles with `fedgen client-bundle`, runs each site's untouched
run.sh in its own network namespace, and drives the admin through the FLARE API (tests/e2e/admin_driver.py).
`main_flow` is the issue's happy path with phase timings; `foreign_ca_flow` is its negative twin.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from ruamel.yaml import YAML

from tests.e2e import cluster_status, kube
from tests.e2e.netns import SERVER_IP, Topology, check_prerequisites
from tests.e2e.procs import AdminClient, Started, children_of, start_container, stop_all

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FEDGEN = VENV_BIN / "fedgen"
NVFLARE = VENV_BIN / "nvflare"

# Unlike examples/federation.yaml: own project, server, tenant, cluster, ports; the dialled name differs from
# the server name (the certificate CN), as a DNS name in front of a gateway would.
E2E_SPEC: dict[str, Any] = {
    "apiVersion": "fedgen/v1",
    "kind": "Federation",
    "metadata": {"name": "oncology-e2e"},
    "spec": {
        "nvflare": {"version": "2.9.0", "image": "europe-west1-docker.pkg.dev/onc-proj/fl/nvflare:2.9.0@sha256:" + "0f" * 32},
        "gitops": {"engine": "config-sync", "repo": "https://git.example.org/fl/oncology-gitops.git", "revision": "main"},
        "sealing": {"certificate": "sealing.pem", "scope": "strict"},
        "clusters": [{"name": "gke-onc", "projectId": "onc-proj", "region": "europe-west1"}],
        "platform": {"kind": "standalone"},  # runs from the rendered namespace baseline, no platform around it
        "workspace": {"bucket": "onc-ws"},
        "server": {
            "name": "onc-server",
            "org": "oncology_net",
            "cluster": "gke-onc",
            "tenant": "fl-oncology",
            "ports": {"fl": 9302, "admin": 9303},
            "hostNames": ["fl.oncology.example.net", "onc-server"],
            "exposure": "gateway",
            "loadBalancerSourceRanges": ["192.0.2.0/24"],
        },
        # clinic-east keeps its key: it enrolls by request (issue 8) instead of receiving a bundle.
        "sites": [
            {"name": "clinic-north", "org": "clinic_n"},
            {"name": "clinic-south", "org": "clinic_s"},
            {"name": "clinic-east", "org": "clinic_e", "enrollment": "request"},
        ],
        "admins": [{"name": "steward@oncology.example.net", "org": "oncology_net", "role": "project_admin"}],
    },
}

# The job: two rounds of scatter-and-gather; each site adds its own delta.
JOB_ROUNDS = 2
JOB_INITIAL = [[0.5, 1.5, 2.5], [-1.0, 0.0, 4.0]]
JOB_DELTAS = {"clinic-north": 1.0, "clinic-south": 4.0, "clinic-east": 2.5}
STOPPED_SITE = "clinic-south"  # shut down after the job, for fedgen status to name it

TIMEOUTS = {
    "command": 120.0,  # fedgen render / client-bundle / kubectl kustomize
    "server_ready": 60.0,  # admin login succeeds
    "registered": 45.0,  # every site in check_status
    "job": 120.0,  # FINISHED:COMPLETED
    "shutdown": 45.0,  # shutdown("all") until every process exited
    "foreign_watch": 15.0,  # the foreign site must stay unregistered at least this long
}


def spec_dict(exposure: str = "gateway", edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(E2E_SPEC)
    data["spec"]["server"]["exposure"] = exposure
    if edit:
        edit(data)
    return data


def expected_global_model(initial: list[list[float]], deltas: dict[str, float], rounds: int) -> np.ndarray:
    """What ScatterAndGather must end with, from the components' source (nvflare 2.9):
    NPModelPersistor starts from `model` as float32; each round every site's NPTrainer returns the global
    weights plus its `delta` (`np_data[NUMPY_KEY] += self._delta`) with meta NUM_STEPS_CURRENT_ROUND = 1;
    InTimeAccumulateWeightedAggregator (DXOAggregator) weighs each contribution by aggregation_weight (default
    1.0) x NUM_STEPS_CURRENT_ROUND and divides by the sum of the weights; FullModelShareableGenerator makes
    the WEIGHTS result the next global model; the persistor saves the last one."""
    model = np.array(initial, dtype=np.float32)
    for _ in range(rounds):
        results = np.stack([model + np.float32(delta) for delta in deltas.values()])  # NPTrainer, per site
        weights = np.array([1.0 * 1 for _ in deltas], dtype=np.float32)  # aggregation weight x NUM_STEPS
        model = (np.tensordot(weights, results, axes=1) / weights.sum()).astype(np.float32)
    return model


def build_job(folder: Path, sites: list[str]) -> Path:
    """The numpy scatter-and-gather job, exported with NVFlare's job API (allow-listed classes only)."""
    from nvflare.apis.dxo import DataKind
    from nvflare.app_common.aggregators.intime_accumulate_model_aggregator import InTimeAccumulateWeightedAggregator
    from nvflare.app_common.np.np_model_persistor import NPModelPersistor
    from nvflare.app_common.np.np_trainer import NPTrainer
    from nvflare.app_common.shareablegenerators.full_model_shareable_generator import FullModelShareableGenerator
    from nvflare.app_common.workflows.scatter_and_gather import ScatterAndGather
    from nvflare.job_config.api import FedJob

    job = FedJob(name="e2e-numpy-sag", min_clients=len(sites), mandatory_clients=list(sites))
    job.to_server(NPModelPersistor(model=JOB_INITIAL), id="persistor")
    job.to_server(FullModelShareableGenerator(), id="shareable_generator")
    job.to_server(InTimeAccumulateWeightedAggregator(expected_data_kind=DataKind.WEIGHTS), id="aggregator")
    job.to_server(
        ScatterAndGather(
            min_clients=len(sites),
            num_rounds=JOB_ROUNDS,
            wait_time_after_min_received=0,
            aggregator_id="aggregator",
            persistor_id="persistor",
            shareable_generator_id="shareable_generator",
            train_task_name="train",
            train_timeout=0,
        )
    )
    # NPTrainer is deprecated in 2.9 (still allow-listed and supported); nvflare forces its warning to "always",
    # so it is recorded here and dropped.
    with warnings.catch_warnings(record=True):
        for site in sites:
            job.to(NPTrainer(delta=JOB_DELTAS[site]), site, tasks=["train", "submit_model"])
    folder.mkdir(parents=True, exist_ok=True)
    job.export_job(str(folder))
    return folder / job.name


# ---------------------------------------------------------------------------------------------- commands


def run(
    argv: list[str], *, what: str, cwd: Path | None = None, home: Path | None = None, timeout: float = TIMEOUTS["command"]
) -> subprocess.CompletedProcess[str]:
    env = None if home is None else {**os.environ, "HOME": str(home)}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} did not finish within {timeout} s: {' '.join(argv)}") from None
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise AssertionError("kubectl (with Kustomize v5) is required: it builds the sync root as Config Sync does")
    return found


@dataclass
class Rendered:
    spec: Path
    repo: Path
    data: dict[str, Any]
    built: kube.Built
    seconds: float
    kustomize_seconds: float

    @property
    def server(self) -> dict[str, Any]:
        return self.data["spec"]["server"]


def render(folder: Path, data: dict[str, Any], sealing_cert: bytes) -> Rendered:
    """fedgen render into folder/repo (the state is the default, folder/repo/.fedgen/state), then build."""
    repo = folder / "repo"
    (repo / "spec").mkdir(parents=True)
    (repo / "spec" / "sealing.pem").write_bytes(sealing_cert)
    spec = repo / "spec" / "federation.yaml"
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with spec.open("w") as fh:
        yaml.dump(data, fh)
    start = time.monotonic()
    run([str(FEDGEN), "render", str(spec), "--repo", str(repo)], what="fedgen render")
    seconds = time.monotonic() - start
    cluster = data["spec"]["server"]["cluster"]
    start = time.monotonic()
    out = run([kubectl(), "kustomize", "--load-restrictor=LoadRestrictionsNone", str(repo / "clusters" / cluster)], what="kubectl kustomize").stdout
    kustomize_seconds = time.monotonic() - start
    objects = [d for d in YAML(typ="safe", pure=True).load_all(out) if d]
    return Rendered(spec, repo, data, kube.Built(objects), seconds, kustomize_seconds)


def bundle(rendered: Rendered, participant: str, dest: Path) -> Path:
    """fedgen client-bundle, verified and extracted the way its README tells the site to; returns the kit."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{participant}.tar.gz"
    run(
        [str(FEDGEN), "client-bundle", participant, "--spec", str(rendered.spec), "--repo", str(rendered.repo),
         "--out", str(archive), "--server-address", SERVER_IP],
        what=f"fedgen client-bundle {participant}",
    )  # fmt: skip
    # `sha256sum -c NAME.tar.gz.sha256`, `tar -xzf NAME.tar.gz`, `(cd NAME && sha256sum -c SHA256SUMS)`
    digest, _, name = (dest / f"{participant}.tar.gz.sha256").read_text().strip().partition("  ")
    assert name == archive.name and hashlib.sha256(archive.read_bytes()).hexdigest() == digest, f"{archive}: checksum mismatch"
    run(["tar", "-xzf", archive.name], what=f"tar -xzf {archive.name}", cwd=dest)
    kit = dest / participant
    run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], what=f"sha256sum -c {participant}/SHA256SUMS", cwd=kit)
    return kit


@dataclass
class Enrolled:
    """A site enrolled by request: its enrollment folder (where it ran every nvflare command), the startup
    kit `nvflare package` assembled there, and the run command its README gives (a shell command, run in `folder`)."""

    folder: Path
    kit: Path
    command: str
    fingerprint: str
    key_pem: bytes


def sha256_fingerprint(pem: str | bytes) -> str:
    """SHA256:AA:BB:... of a PEM certificate, as `nvflare package --fingerprint` takes it."""
    digest = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem).fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def readme_run_command(readme: str) -> str:
    """The client command of the enrollment README's "Run the client" section (an indented block with
    backslash continuations), as the site pastes it into a shell."""
    section = re.split(r"## \d+\. Run the client", readme, maxsplit=1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("python3 "))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    return "\n".join(lines[start : end + 1])


def enroll(rendered: Rendered, site: str, dest: Path) -> Enrolled:
    """Issue 8's flow, each side as the enrollment README tells it: the site runs `fedgen enroll kit` and
    `nvflare cert request` in its own folder with its own HOME; its pull request adds the request zip to the
    repo; the operator (another HOME) runs `fedgen enroll approve` on the committed file; the site checks the
    root CA fingerprint against the one the server's built startup ConfigMap trusts and runs `nvflare package`."""
    from fedgen.enroll import request_path, signed_path

    project, srv = rendered.data["metadata"]["name"], rendered.server
    folder, site_home, operator_home = dest / f"{site}-enroll", dest / "site-home", dest / "operator-home"
    site_home.mkdir(parents=True)
    operator_home.mkdir(parents=True)
    spec_repo = ["--spec", str(rendered.spec), "--repo", str(rendered.repo)]
    run([str(FEDGEN), "enroll", "kit", site, *spec_repo, "--out", str(folder)], what=f"fedgen enroll kit {site}")
    run([str(NVFLARE), "cert", "request", "-p", "participant.yaml"], what=f"nvflare cert request ({site})", cwd=folder, home=site_home)
    request = rendered.repo / request_path(project, site)
    request.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / site / f"{site}.request.zip", request)  # the site's pull request, merged
    approved = run([str(FEDGEN), "enroll", "approve", str(request), *spec_repo], what=f"fedgen enroll approve {site}", home=operator_home)
    signed = rendered.repo / approved.stdout.strip()
    assert signed == rendered.repo / signed_path(project, site) and signed.is_file(), approved.stdout
    # The PR check on the repo with both zips committed: the request's and the signed zip's rules all pass.
    checked = subprocess.run(
        [str(FEDGEN), "validate", "--repo", str(rendered.repo), "--format", "json"], capture_output=True, text=True, timeout=TIMEOUTS["command"]
    )
    findings = json.loads(checked.stdout)["findings"] if checked.stdout.startswith("{") else checked.stderr
    assert checked.returncode == 0 and findings == [], f"fedgen validate after enrolling {site}: {findings}"

    server_root = rendered.built.get("ConfigMap", srv["tenant"], f"nvflare-{srv['name']}-startup")["data"]["rootCA.pem"]
    trusted = sha256_fingerprint(server_root)
    given = (folder / "ROOTCA_FINGERPRINT").read_text().strip()
    assert given == trusted, f"the enrollment kit's fingerprint {given} is not the server's root {trusted}"
    assert f"root CA fingerprint {trusted}" in approved.stderr, f"approve did not print the fingerprint to confirm:\n{approved.stderr}"
    run(
        [str(NVFLARE), "package", str(signed), "--request-dir", site, "-w", "workspace", "--fingerprint", given],
        what=f"nvflare package ({site})", cwd=folder, home=site_home,
    )  # fmt: skip
    kit = folder / "workspace" / project / "prod_00" / site
    assert (kit / "startup" / "rootCA.pem").read_text() == server_root, "the packaged kit trusts another root than the server"
    key_pem = (folder / site / f"{site}.key").read_bytes()
    assert (kit / "startup" / "client.key").read_bytes() == key_pem
    return Enrolled(folder, kit, readme_run_command((folder / "README.md").read_text()), given, key_pem)


def key_copies(key_pem: bytes, roots: list[Path]) -> list[str]:
    """Files under roots holding the private key, directly or in a zip member: its DER, its PEM body, or a
    base64-encoded copy of the PEM file."""
    key = serialization.load_pem_private_key(key_pem, None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    body = b"".join(key_pem.strip().splitlines()[1:-1])
    # Slices from the key material itself: the first ~40 characters of every RSA PKCS#8 key are the same
    # ASN.1 header (and would match any other key). 96 is a multiple of 3, so the slice's base64 is aligned
    # with the base64 of the whole file.
    texts = (body[128:192], base64.b64encode(key_pem[96:144]))  # searched with line breaks removed
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            blobs = [path.read_bytes()]
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    blobs += [zf.read(n) for n in zf.namelist()]
            if any(der in b or any(t in b.replace(b"\n", b"") for t in texts) for b in blobs):
                found.append(str(path))
    return found


# ------------------------------------------------------------------------------------------- federation


@dataclass
class Federation:
    """One running federation: topology, processes, admin. close() always cleans up."""

    work: Path
    rendered: Rendered
    sealing_key: bytes
    topology: Topology = field(default_factory=Topology)
    processes: list[Started] = field(default_factory=list)
    admin: AdminClient | None = None
    server: Started | None = None
    pod: kube.ServerPod | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_prerequisites()
        try:
            self.topology.start()
        except BaseException:
            self.topology.teardown()
            raise

    # ---- the server, from the built manifests
    def start_server(self) -> Started:
        srv = self.rendered.server
        tenant, name = srv["tenant"], srv["name"]
        self.pod = kube.server_pod(
            self.rendered.built,
            namespace=tenant,
            deployment=f"nvflare-{name}",
            sealing_key=self.sealing_key,
            workdir=self.work / "server",
            bucket=self.work / "bucket",
            pod_ip=SERVER_IP,
            # Stands in for cluster DNS: the Service name resolves to its ClusterIP, which leads back to the pod.
            extra_hosts={SERVER_IP: [name, f"{name}.{tenant}", f"{name}.{tenant}.svc", f"{name}.{tenant}.svc.cluster.local"]},
            report=self.work / "server" / "server.report.json",
        )
        self.notes += self.pod.notes
        self.server = start_container("server", self.topology.server_ns, self.pod.plan, self.work / "server", logs=[self.pod.log])
        self.processes.append(self.server)
        return self.server

    def server_process(self) -> dict[str, Any]:
        """The running server as the kernel sees it (from the host's /proc): identity, root, mounts."""
        assert self.server is not None and self.pod is not None
        inits = children_of(self.server.pid)
        mains = children_of(inits[0]) if inits else []
        assert len(mains) == 1, f"expected podinit with one child (the container's command), found {inits} / {mains}"
        pid = mains[0]
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
        mounts = {}
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            fields = line.split()
            mounts[fields[4]] = "ro" if "ro" in fields[5].split(",") else "rw"
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return {
            "uid": status["Uid"].split(),
            "gid": status["Gid"].split(),
            "groups": status["Groups"].split(),
            "no_new_privs": status.get("NoNewPrivs", "").strip(),
            "cap_eff": status["CapEff"].strip(),
            "cap_bnd": status["CapBnd"].strip(),
            "root": os.readlink(f"/proc/{pid}/root"),
            "cwd": os.readlink(f"/proc/{pid}/cwd"),
            "cmdline": Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0"),
            "environ": dict(e.decode().split("=", 1) for e in environ if e),
            "mounts": mounts,
        }

    # ---- participants
    def dialled_names(self) -> list[str]:
        return [self.rendered.server["hostNames"][0]]

    def start_site(self, name: str, kit: Path) -> Started:
        """A bundled site: its untouched run.sh, from the folder the bundle was extracted into."""
        return self._start_participant(name, kit.parent, [f"./{kit.name}/run.sh"], kit / "log.txt")

    def start_enrolled_site(self, name: str, enrolled: Enrolled) -> Started:
        """A site enrolled by request: its README's command, from its enrollment folder."""
        argv = ["/bin/bash", "-c", f"exec {enrolled.command}"]  # exec: the client is the container's command
        return self._start_participant(name, enrolled.folder, argv, enrolled.kit / "log.txt")

    def _start_participant(self, label: str, cwd: Path, argv: list[str], log: Path) -> Started:
        leg = self.topology.add_participant(label, self.dialled_names())
        home = self.work / "home" / label
        home.mkdir(parents=True)
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",  # an activated venv
            "VIRTUAL_ENV": str(VENV_BIN.parent),
            "HOME": str(home),
            "LANG": "C.UTF-8",
        }
        plan = {"mounts": [], "root": None, "cwd": str(cwd), "user": None, "argv": argv, "env": env, "grace": 10}
        started = start_container(label, leg.netns, plan, self.work / "sites", logs=[log])
        self.processes.append(started)
        return started

    def start_admin(self, name: str, kit: Path) -> AdminClient:
        leg = self.topology.add_participant("admin", self.dialled_names())
        env = {"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(kit.parent), "LANG": "C.UTF-8"}
        self.admin = AdminClient(leg.netns, name, kit, self.work, env)
        self.processes.append(self.admin.started)
        return self.admin

    # ---- waiting
    def wait_registered(self, names: set[str], timeout: float) -> list[str]:
        assert self.admin is not None
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            self.check_running()
            seen = self.admin.call("system_info", 15)["clients"]
            if names <= set(seen):
                return seen
            time.sleep(0.25)
        raise AssertionError(f"clients {sorted(names)} not all registered within {timeout} s (check_status shows {seen})")

    def check_running(self) -> None:
        for p in self.processes:
            if not p.alive():
                raise AssertionError(f"{p.label} exited early (status {p.popen.returncode})")

    # ---- the end
    def shutdown(self, timeout: float, *, unreachable: frozenset[str] = frozenset()) -> dict[str, Any]:
        """shutdown("all") through the admin API; every process must then exit by itself within timeout, except
        those the server cannot reach (never registered): they are only checked to be still running."""
        assert self.admin is not None
        deadline = time.monotonic() + timeout
        result = self.admin.call("shutdown", timeout, target="all", timeout=timeout)
        self.admin.exit(timeout=max(1.0, deadline - time.monotonic()))
        late = []
        for p in self.processes:
            if p.label in unreachable:
                continue
            if p.wait(max(0.1, deadline - time.monotonic())) is None:
                late.append(p.label)
        return {"reply": result, "not_exited": late, "unreachable_running": sorted(p.label for p in self.processes if p.label in unreachable and p.alive())}

    def reports(self) -> dict[str, dict[str, Any] | None]:
        return {p.label: p.read_report() for p in self.processes if p.report is not None}

    def failure_logs(self, lines: int = 40) -> str:
        return "\n".join(p.tails(lines) for p in self.processes)

    def close(self) -> list[str]:
        """Stop whatever still runs (by our PIDs), delete namespaces and /etc/netns entries; what went wrong."""
        problems = []
        if self.admin is not None and self.admin.started.alive():
            self.admin.exit(timeout=5)
        for label, how in stop_all(self.processes).items():
            if how != "exited":
                problems.append(f"{label}: {how}")
        left = {ns: pids for ns, pids in self.topology.pids().items() if pids}
        if left:
            problems.append(f"processes still in our namespaces: {left}")
        self.topology.teardown()
        problems += self.topology.errors
        leftovers = self.topology.leftovers()
        if leftovers:
            problems.append(f"left on the machine: {leftovers}")
        return problems


# ----------------------------------------------------------------------------------------------- results


@dataclass
class Outcome:
    exposure: str
    timings: dict[str, float]
    facts: dict[str, Any]


def _job_store(rendered: Rendered, pod: kube.ServerPod, bucket: Path) -> Path:
    """Where the server's resources.json (from the built local ConfigMap) puts the job store, on the host."""
    srv = rendered.server
    cm = rendered.built.get("ConfigMap", srv["tenant"], f"nvflare-{srv['name']}-local")
    resources = json.loads(cm["data"]["resources.json"])
    uri = next(c["args"]["uri_root"] for c in resources["components"] if c.get("id") == "job_manager")
    for mount in pod.mounts:
        if pod.volumes[mount["name"]] == bucket and Path(uri).is_relative_to(mount["mountPath"]):
            return bucket / Path(uri).relative_to(mount["mountPath"])
    raise AssertionError(f"the job store {uri} is not on the bucket volume")


def exposure_facts(rendered: Rendered) -> dict[str, Any]:
    """What the built manifests say about how clients reach the server, per exposure mode."""
    srv = rendered.server
    tenant, name, ports = srv["tenant"], srv["name"], srv["ports"]
    built = rendered.built
    dep = built.get("Deployment", tenant, f"nvflare-{name}")
    annotations = dep["spec"]["template"]["metadata"].get("annotations", {}) or {}
    service = built.get("Service", tenant, name)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    service_ports = {p["port"]: named.get(p["targetPort"], p["targetPort"]) for p in service["spec"]["ports"]}
    excluded = annotations.get("traffic.sidecar.istio.io/excludeInboundPorts")
    return {
        "service_type": service["spec"].get("type", "ClusterIP"),
        "service_ports_to_container": service_ports,
        "exclude_inbound_ports": sorted(int(p) for p in excluded.split(",")) if excluded else None,
        "gateway_routes": sorted(
            (r["match"][0]["port"], r["route"][0]["destination"]["host"], r["route"][0]["destination"]["port"]["number"])
            for vs in built.objects
            if vs["kind"] == "VirtualService"
            for r in vs["spec"].get("tcp", [])
        ),
        "peer_authentication": [
            {str(k): v.get("mode") for k, v in (pa["spec"].get("portLevelMtls") or {}).items()}
            for pa in built.objects
            if pa["kind"] == "PeerAuthentication" and pa["metadata"].get("namespace") == tenant
        ],
        "ports": ports,
    }


def check_server_process(seen: dict[str, Any], pod: kube.ServerPod) -> None:
    """The server runs the manifest's command, env, identity and mounts (checked on the live process)."""
    user = pod.plan["user"]
    assert seen["cmdline"] == pod.argv, f"command line {seen['cmdline']} != the manifest's {pod.argv}"
    assert seen["environ"] == pod.env, f"environment {seen['environ']} != {pod.env}"
    assert seen["uid"] == [str(user["uid"])] * 4 and seen["gid"] == [str(user["gid"])] * 4, (seen["uid"], seen["gid"])
    assert sorted(seen["groups"]) == sorted(str(g) for g in user["groups"]), seen["groups"]
    assert int(seen["cap_eff"], 16) == 0, f"effective capabilities {seen['cap_eff']}"
    if user["drop_all_caps"]:
        assert int(seen["cap_bnd"], 16) == 0, f"bounding set {seen['cap_bnd']} (drop: [ALL])"
    if user["no_new_privs"]:
        assert seen["no_new_privs"] == "1", "allowPrivilegeEscalation: false, but no_new_privs is not set"
    assert seen["root"] == pod.plan["root"], f"root {seen['root']}"
    expected = {"/": "ro" if any(op["op"] == "remount_ro" for op in pod.plan["mounts"]) else "rw"}
    for m in pod.mounts:
        expected[m["mountPath"].rstrip("/")] = next(
            "ro" if op.get("readonly") else "rw" for op in pod.plan["mounts"] if op.get("target") == pod.plan["root"] + m["mountPath"]
        )
    actual = {path: seen["mounts"].get(path) for path in expected}
    assert actual == expected, f"mounts seen by the server {actual} != the manifest's {expected}"


@contextmanager
def reported(fed: Any, log: Callable[[str], None]) -> Iterator[None]:
    """On failure, add the last lines of every log to the error; always clean up (and a cleanup problem
    fails a run that otherwise passed)."""
    ok = False
    try:
        yield
        ok = True
    except BaseException as exc:
        logs = fed.failure_logs()
        if isinstance(exc, AssertionError):
            raise AssertionError(f"{exc}\n\n{logs}") from None
        log(logs)
        raise
    finally:
        problems = fed.close()
        if ok:
            assert not problems, f"cleanup: {problems}"
        elif problems:
            log(f"cleanup after the failure: {problems}")


def main_flow(work: Path, sealing: tuple[bytes, bytes], *, exposure: str = "gateway", log: Callable[[str], None] = print) -> Outcome:
    """The issue's happy path. Raises AssertionError (with the last log lines) on any failure."""
    check_prerequisites()  # before spending time on renders: missing root/ip/unshare is a failure, not a skip
    timings: dict[str, float] = {}
    facts: dict[str, Any] = {"exposure": exposure}
    total = time.monotonic()
    rendered = render(work / "federation", spec_dict(exposure), sealing[1])
    timings["render"] = rendered.seconds
    timings["kustomize"] = rendered.kustomize_seconds
    data = rendered.data
    sites = [s["name"] for s in data["spec"]["sites"]]
    requesting = [s["name"] for s in data["spec"]["sites"] if s.get("enrollment") == "request"]
    admin_name = data["spec"]["admins"][0]["name"]
    start = time.monotonic()
    # All at once, as independent people would: bundles only read the state; approve takes its lock.
    with ThreadPoolExecutor(4) as pool:
        enrolling = {site: pool.submit(enroll, rendered, site, work / "enrolled" / site) for site in requesting}
        bundling = {p: pool.submit(bundle, rendered, p, work / "bundles" / p) for p in [*sites, admin_name] if p not in requesting}
        kits = {p: f.result() for p, f in bundling.items()}
        timings["bundles"] = time.monotonic() - start
        enrolled = {site: f.result() for site, f in enrolling.items()}
        timings["enroll"] = time.monotonic() - start
    for site, e in enrolled.items():
        # Everything but the site's own folder: the repo (state, request and signed zips), bundles, operator.
        elsewhere = [rendered.repo, work / "bundles", e.folder.parent / "operator-home"]
        leaked = key_copies(e.key_pem, elsewhere)
        assert not leaked, f"{site}'s private key left its folder: {leaked}"
    facts["enrolled"] = {site: {"fingerprint": e.fingerprint, "command": e.command} for site, e in enrolled.items()}
    job = build_job(work / "jobs", sites)
    fed = Federation(work, rendered, sealing[0])
    with reported(fed, log):
        start = time.monotonic()
        fed.start_server()
        pod = fed.pod
        assert pod is not None
        admin = fed.start_admin(admin_name, kits[admin_name])
        admin.call("login", TIMEOUTS["server_ready"], timeout=TIMEOUTS["server_ready"])
        timings["server_ready"] = time.monotonic() - start
        log(f"server ready after {timings['server_ready']:.1f} s")
        info = admin.call("system_info", 15)
        facts["server_status_before"] = info["server_status"]
        facts["server_process"] = seen = fed.server_process()
        check_server_process(seen, pod)

        start = time.monotonic()
        for site in sites:
            if site in enrolled:
                fed.start_enrolled_site(site, enrolled[site])
            else:
                fed.start_site(site, kits[site])
        facts["registered"] = fed.wait_registered(set(sites), TIMEOUTS["registered"])
        timings["clients_registered"] = time.monotonic() - start
        log(f"clients {facts['registered']} registered after {timings['clients_registered']:.1f} s")

        start = time.monotonic()
        job_id = admin.call("submit", 30, job=str(job))
        result = admin.call("monitor", TIMEOUTS["job"], job_id=job_id, timeout=TIMEOUTS["job"], poll=0.5)
        timings["job"] = time.monotonic() - start
        status = (result.get("meta") or {}).get("status")
        facts["job"] = {"id": job_id, "monitor": result["code"], "status": status}
        log(f"job {job_id}: {status} after {timings['job']:.1f} s")
        assert result["code"] == "JOB_FINISHED" and status == "FINISHED:COMPLETED", f"job {job_id} ended {result['code']} / {status}"
        downloaded = Path(admin.call("download", 60, job_id=job_id, destination=str(work / "results")))
        models = sorted(downloaded.rglob("server.npy"))
        assert models, f"no server.npy in the downloaded job result {downloaded}"
        final = np.load(models[0])
        expected = expected_global_model(JOB_INITIAL, {s: JOB_DELTAS[s] for s in sites}, JOB_ROUNDS)
        facts["model"] = {"path": str(models[0].relative_to(work)), "value": final.tolist(), "expected": expected.tolist()}
        assert final.shape == expected.shape and np.allclose(final, expected, rtol=0, atol=1e-5), (
            f"aggregated model {final.tolist()} != expected {expected.tolist()}"
        )
        store = _job_store(rendered, pod, work / "bucket")
        facts["job_store"] = str(store.relative_to(work))
        assert (store / job_id).is_dir(), f"the job store on the bucket ({store}) has no {job_id}: resources.json did not move it"

        if exposure == "gateway":  # issue 16, once: fedgen status --admin, then with one site shut down
            start = time.monotonic()
            facts["status"] = cluster_status.status_flow(fed, FEDGEN, work / "bundles" / admin_name / f"{admin_name}.tar.gz", STOPPED_SITE)
            timings["status"] = time.monotonic() - start

        start = time.monotonic()
        down = fed.shutdown(TIMEOUTS["shutdown"])
        timings["shutdown"] = time.monotonic() - start
        assert not down["not_exited"], f"still running {TIMEOUTS['shutdown']} s after shutdown('all'): {down['not_exited']}"
        facts["exit"] = {p.label: p.popen.returncode for p in fed.processes}
        facts["reports"] = {k: {"exit_code": v["exit_code"], "stragglers": v["stragglers"]} if v else None for k, v in fed.reports().items()}
        stragglers = {k: v["stragglers"] for k, v in fed.reports().items() if v and v["stragglers"]}
        assert not stragglers, f"processes that outlived their container's command: {stragglers}"
        missing = [k for k, v in fed.reports().items() if v is None]
        assert not missing, f"no podinit report from {missing}"
        facts["topology"] = fed.topology.describe()
        facts["server_pod"] = {"argv": pod.argv, "env": dict(pod.env), "kit_root": pod.kit_root, "notes": fed.notes}
        facts["manifests"] = exposure_facts(rendered)
    timings["total"] = time.monotonic() - total
    return Outcome(exposure, timings, facts)


# gRPC core logs e.g. "Handshake failed with error SSL_ERROR_SSL: ...:CERTIFICATE_VERIFY_FAILED: unable to get local
# issuer certificate" (the client cannot verify the server's certificate with the foreign root CA).
TLS_FAILURE = re.compile(r"^.*(?:CERTIFICATE_VERIFY_FAILED|certificate verify failed).*$", re.IGNORECASE | re.MULTILINE)


def foreign_ca_flow(work: Path, sealing: tuple[bytes, bytes], *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The negative twin: a site whose kit comes from another federation's CA (same project, server name,
    ports and dialled name; separate state) dials this server. A legitimate site registers (control); the
    foreign one must not appear in check_status for TIMEOUTS['foreign_watch'] seconds, and its log must show
    the TLS verification failure."""
    check_prerequisites()
    facts: dict[str, Any] = {}
    t0 = time.monotonic()
    marks: dict[str, float] = {}
    facts["marks"] = marks

    def mark(name: str) -> None:
        marks[name] = round(time.monotonic() - t0, 2)

    def foreign_sites(d: dict[str, Any]) -> None:
        d["spec"]["sites"] = [{"name": "clinic-rogue", "org": "clinic_r"}]

    with ThreadPoolExecutor(2) as pool:
        ours_f = pool.submit(render, work / "federation", spec_dict("gateway"), sealing[1])
        theirs_f = pool.submit(render, work / "foreign", spec_dict("gateway", foreign_sites), sealing[1])
        ours, theirs = ours_f.result(), theirs_f.result()
    mark("rendered")
    tenant, cm = ours.server["tenant"], f"nvflare-{ours.server['name']}-startup"
    assert ours.built.get("ConfigMap", tenant, cm)["data"]["rootCA.pem"] != theirs.built.get("ConfigMap", tenant, cm)["data"]["rootCA.pem"], (
        "the two federations share a CA: the negative test would prove nothing"
    )
    control = ours.data["spec"]["sites"][0]["name"]
    admin_name = ours.data["spec"]["admins"][0]["name"]
    with ThreadPoolExecutor(3) as pool:
        rogue_kit_f = pool.submit(bundle, theirs, "clinic-rogue", work / "bundles" / "clinic-rogue")
        admin_kit_f = pool.submit(bundle, ours, admin_name, work / "bundles" / admin_name)
        control_kit = bundle(ours, control, work / "bundles" / control)
        rogue_kit, admin_kit = rogue_kit_f.result(), admin_kit_f.result()
    mark("bundled")
    ours_client = json.loads((control_kit / "startup" / "fed_client.json").read_text())
    rogue_client = json.loads((rogue_kit / "startup" / "fed_client.json").read_text())
    assert ours_client["servers"] == rogue_client["servers"], "the foreign kit must dial the same name, port and identity"
    fed = Federation(work, ours, sealing[0])
    with reported(fed, log):
        fed.start_server()
        admin = fed.start_admin(admin_name, admin_kit)
        admin.call("login", TIMEOUTS["server_ready"], timeout=TIMEOUTS["server_ready"])
        mark("server_ready")
        rogue = fed.start_site("clinic-rogue", rogue_kit)
        started = time.monotonic()
        fed.start_site(control, control_kit)
        facts["control_registered"] = fed.wait_registered({control}, TIMEOUTS["registered"])
        sightings = []
        while time.monotonic() - started < TIMEOUTS["foreign_watch"]:
            fed.check_running()
            clients = admin.call("system_info", 15)["clients"]
            if "clinic-rogue" in clients:
                sightings.append(round(time.monotonic() - started, 1))
            time.sleep(0.5)
        facts["watched_seconds"] = round(time.monotonic() - started, 1)
        assert not sightings, f"the foreign-CA site registered (seen at {sightings} s)"
        assert rogue.alive(), "the foreign site exited instead of retrying (NVFlare clients retry forever)"
        text = "\n".join(p.read_text(errors="replace") for p in [rogue.output, *rogue.logs] if p.exists())
        evidence = [m.group(0).strip() for m in TLS_FAILURE.finditer(text)]
        facts["rogue_log_evidence"] = evidence[:1]
        facts["rogue_tls_failures"] = len(evidence)
        assert evidence, "the foreign site's log shows no TLS verification failure:\n" + rogue.tails()
        mark("watched")
        down = fed.shutdown(TIMEOUTS["shutdown"], unreachable=frozenset({"clinic-rogue"}))
        mark("shut_down")
        assert not down["not_exited"], f"still running {TIMEOUTS['shutdown']} s after shutdown('all'): {down['not_exited']}"
        # The server cannot shut down a client it never admitted: the foreign site is still dialling.
        assert down["unreachable_running"] == ["clinic-rogue"], down
        facts["rogue_stopped"] = rogue.stop()
        mark("rogue_stopped")
        assert facts["rogue_stopped"] in ("terminated", "killed"), facts["rogue_stopped"]
    mark("closed")
    return facts
