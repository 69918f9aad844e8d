"""Issue 17: a site that cannot connect, and a federation larger than the server admits, against a real server.

The server runs from the BUILT manifests exactly as in test_e2e.py (tests/e2e/flow.py); every participant has
its own network namespace (tests/e2e/netns.py).

- The connectivity doctor every bundle carries (`doctor.sh`) is run, untouched, in participant namespaces
  against one shared server: a good site and a good admin (OK), a bundle from a render with other ports (TCP
  refused), a namespace where the dialled name does not resolve (DNS), a bundle from another federation's
  state (foreign CA), and a TLS-inspecting proxy with its own certificate between the site and the server.
- Item 6: the rendered configuration of a 3-site federation admits all three sites; the premise that NVFlare
  refuses every site past max_num_clients is shown on a server whose limit is set to 2.

Needs root, `ip` and `unshare`: without them the tests FAIL (never skip).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ruamel.yaml import YAML

from tests.e2e import flow, kube
from tests.e2e.netns import SERVER_IP
from tests.e2e.procs import Started, start_container

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HERE = Path(__file__).resolve().parent
SITES = ["clinic-north", "clinic-south", "clinic-east"]
ADMIN = flow.E2E_SPEC["spec"]["admins"][0]["name"]
SERVER = flow.E2E_SPEC["spec"]["server"]
DIALLED = SERVER["hostNames"][0]
FL_PORT, ADMIN_PORT = SERVER["ports"]["fl"], SERVER["ports"]["admin"]
REJECTED = re.compile(r"Maximum number of clients reached\. Reject client: (\S+) login")
DOCTOR_TIMEOUT = 60.0
PROXY_CA = "Example Corp TLS Inspection CA"


def three_sites(data: dict[str, Any]) -> None:
    """Every site gets a bundle (the enrollment-by-request path is test_e2e.py's)."""
    data["spec"]["sites"] = [{"name": s["name"], "org": s["org"]} for s in data["spec"]["sites"]]
    assert [s["name"] for s in data["spec"]["sites"]] == SITES


def foreign_site(data: dict[str, Any]) -> None:
    data["spec"]["sites"] = [{"name": "clinic-rogue", "org": "clinic_r"}]


def render_moved_ports(rendered: flow.Rendered, folder: Path) -> flow.Rendered:
    """The same federation and state rendered with other ports: a bundle made after a port change the server
    has not received yet."""
    repo = folder / "repo"
    shutil.copytree(rendered.repo, repo, symlinks=True)
    data = json.loads(json.dumps(rendered.data))
    data["spec"]["server"]["ports"] = {"fl": FL_PORT + 10, "admin": ADMIN_PORT + 10}
    spec = repo / "spec" / "federation.yaml"
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with spec.open("w") as fh:
        yaml.dump(data, fh)
    flow.run([str(flow.FEDGEN), "render", str(spec), "--repo", str(repo)], what="fedgen render (moved ports)")
    return flow.Rendered(spec, repo, data, kube.Built([]), 0.0, 0.0)


def proxy_certificate(folder: Path) -> tuple[Path, Path]:
    """What a TLS-inspecting proxy presents: a certificate for the dialled name from the proxy's own CA (made now)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PROXY_CA)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DIALLED)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(DIALLED)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "proxy.crt", folder / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Doctor:
    code: int
    lines: list[str]

    @property
    def verdict(self) -> str:
        return self.lines[-1] if self.lines else ""

    def line(self, check: str) -> list[str]:
        return [line for line in self.lines if re.match(rf"^\w+\s+{check}\s", line)]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def run_doctor(netns: str, kit: Path) -> Doctor:
    """The bundle's doctor.sh, untouched, as the site runs it (an activated virtualenv with nvflare)."""
    env = {"PATH": f"{flow.VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(kit.parent), "LANG": "C.UTF-8"}
    argv = ["ip", "netns", "exec", netns, str(kit / "doctor.sh"), "--timeout", "3"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=DOCTOR_TIMEOUT, cwd=kit.parent)
    assert not proc.stderr, proc.stderr
    return Doctor(proc.returncode, proc.stdout.splitlines())


@dataclass
class Bundles:
    rendered: flow.Rendered  # the 3-site federation
    kits: dict[str, Path]  # its sites and admin, plus "rogue" (another federation's state) and "moved" (other ports)
    work: Path


@dataclass
class Running:
    fed: flow.Federation
    kits: dict[str, Path]
    work: Path
    extra: list[Started] = field(default_factory=list)


@pytest.fixture(scope="module")
def bundles(e2e_sealing: tuple[bytes, bytes], tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    """The renders and every bundle the cases need: ours, one from another federation's state, one rendered
    with other ports."""
    flow.check_prerequisites()
    work = tmp_path_factory.mktemp("connectivity")
    with ThreadPoolExecutor(6) as pool:
        ours_f = pool.submit(flow.render, work / "federation", flow.spec_dict("gateway", three_sites), e2e_sealing[1])
        theirs_f = pool.submit(flow.render, work / "foreign", flow.spec_dict("gateway", foreign_site), e2e_sealing[1])
        jobs = {
            "rogue": pool.submit(lambda: flow.bundle(theirs_f.result(), "clinic-rogue", work / "bundles" / "rogue")),
            "moved": pool.submit(lambda: flow.bundle(render_moved_ports(ours_f.result(), work / "moved"), SITES[0], work / "bundles" / "moved")),
        }
        ours = ours_f.result()
        jobs.update({p: pool.submit(flow.bundle, ours, p, work / "bundles" / p) for p in [*SITES, ADMIN]})
        return Bundles(ours, {name: job.result() for name, job in jobs.items()}, work)


@pytest.fixture(scope="module")
def running(bundles: Bundles, e2e_sealing: tuple[bytes, bytes]) -> Iterator[Running]:
    """One server of the 3-site federation (its rendered configuration), its admin logged in."""
    (bundles.work / "running").mkdir()
    fed = flow.Federation(bundles.work / "running", bundles.rendered, e2e_sealing[0])
    state = Running(fed, bundles.kits, bundles.work)
    with flow.reported(fed, print):
        fed.start_server()
        admin = fed.start_admin(ADMIN, bundles.kits[ADMIN])
        admin.call("login", flow.TIMEOUTS["server_ready"], timeout=flow.TIMEOUTS["server_ready"])
        try:
            yield state
        finally:
            for extra in state.extra:
                extra.stop()
        down = fed.shutdown(flow.TIMEOUTS["shutdown"])
        assert not down["not_exited"], f"still running after shutdown('all'): {down['not_exited']}"


def test_nvflare_refuses_sites_past_max_num_clients(bundles: Bundles, e2e_sealing: tuple[bytes, bytes], tmp_path: Path) -> None:
    """The premise at small scale: with max_num_clients 2 in the server's resources.json, the third of three
    sites is refused ("Maximum number of clients reached") while two register. Runs before the shared server
    starts (one federation at a time on the machine)."""
    built = kube.Built(copy.deepcopy(bundles.rendered.built.objects))
    local = built.get("ConfigMap", SERVER["tenant"], f"nvflare-{SERVER['name']}-local")
    resources = json.loads(local["data"]["resources.json"])
    resources["servers"][0]["max_num_clients"] = 2
    local["data"]["resources.json"] = json.dumps(resources, indent=4)
    kits = bundles.kits
    fed = flow.Federation(tmp_path, dataclasses.replace(bundles.rendered, built=built), e2e_sealing[0])
    with flow.reported(fed, print):
        fed.start_server()
        admin = fed.start_admin(ADMIN, kits[ADMIN])
        admin.call("login", flow.TIMEOUTS["server_ready"], timeout=flow.TIMEOUTS["server_ready"])
        sites = {site: fed.start_site(site, kits[site]) for site in SITES}
        assert fed.pod is not None
        deadline = time.monotonic() + flow.TIMEOUTS["registered"]
        while True:
            assert fed.server is not None and fed.server.alive(), "the server exited"
            clients = admin.call("system_info", 15)["clients"]
            rejected = set(REJECTED.findall(fed.pod.log.read_text(errors="replace")))
            if len(clients) == 2 and rejected:
                break
            assert time.monotonic() < deadline, f"registered {clients}, rejected {sorted(rejected)}"
            time.sleep(0.25)
        assert len(rejected) == 1 and rejected.isdisjoint(clients) and set(clients) | rejected == set(SITES), (clients, rejected)
        [refused] = rejected
        # NVFlare's client gives up: it logs the refusal and exits ("Login failed"); the two others stay.
        assert sites[refused].wait(30) is not None, sites[refused].tails()
        log = "\n".join(p.read_text(errors="replace") for p in sites[refused].logs)
        assert "registration rejected: Maximum number of clients reached" in log, sites[refused].tails()
        assert all(sites[site].alive() for site in clients)
        down = fed.shutdown(flow.TIMEOUTS["shutdown"])
        assert not down["not_exited"], down


def _netns(running: Running, label: str, *, dialled: bool = True, mapped_to: str = SERVER_IP) -> str:
    return running.fed.topology.add_participant(label, [DIALLED] if dialled else [], mapped_to=mapped_to).netns


def test_doctor_says_ok_for_a_good_site_and_admin(running: Running) -> None:
    for label, kit in (("dr-site", running.kits[SITES[0]]), ("dr-admin", running.kits[ADMIN])):
        doctor = run_doctor(_netns(running, label), kit)
        assert doctor.code == 0 and doctor.verdict == "OK", str(doctor)
        assert all(line.startswith(("OK ", "egress rule:")) for line in doctor.lines[:-1]), str(doctor)
        assert len(doctor.line("clock")) == 3, "the kit's certificate, the root CA and the server's certificate"
        assert doctor.line("tls")[0].endswith(f"the server accepted this kit's certificate (CN={kit.name})"), str(doctor)
        port = FL_PORT if label == "dr-site" else ADMIN_PORT
        assert f"egress rule: allow outbound TCP from this machine to {SERVER_IP} ({DIALLED}) port {port};" in doctor.lines[-2]


def test_doctor_names_a_wrong_port(running: Running) -> None:
    doctor = run_doctor(_netns(running, "dr-port"), running.kits["moved"])
    assert doctor.code == 1, str(doctor)
    assert doctor.verdict.startswith(f"FAIL: tcp: {SERVER_IP} port {FL_PORT + 10} (fl) refused the connection"), str(doctor)
    assert doctor.line("dns")[0].startswith("OK"), str(doctor)
    assert doctor.line("tls")[0].startswith("SKIP"), str(doctor)


def test_doctor_names_a_missing_name(running: Running) -> None:
    doctor = run_doctor(_netns(running, "dr-dns", dialled=False), running.kits[SITES[0]])
    assert doctor.code == 1, str(doctor)
    assert doctor.verdict.startswith(f"FAIL: dns: {DIALLED} does not resolve"), str(doctor)
    # The fix names the exact /etc/hosts line, with the address the bundle was made for.
    assert f"add the line '{SERVER_IP} {DIALLED}' to /etc/hosts" in doctor.verdict, str(doctor)


def test_doctor_names_a_foreign_ca(running: Running) -> None:
    doctor = run_doctor(_netns(running, "dr-ca"), running.kits["rogue"])
    assert doctor.code == 1, str(doctor)
    assert doctor.line("tcp")[0].startswith("OK"), str(doctor)
    project = flow.E2E_SPEC["metadata"]["name"]
    # Both federations' root CAs are named after the (same) project: only the key differs.
    assert doctor.verdict.startswith(f"FAIL: tls: the server's certificate (CN={SERVER['name']}) names the issuer of your rootCA.pem (CN={project})"), str(
        doctor
    )
    assert "this bundle comes from another CA than the server's" in doctor.verdict
    assert "fedgen client-bundle clinic-rogue" in doctor.verdict


def test_doctor_names_a_tls_proxy(running: Running) -> None:
    cert, key = proxy_certificate(running.work / "proxy")
    netns = _netns(running, "dr-proxy", mapped_to="127.0.0.1")
    argv = [str(flow.VENV_BIN / "python"), str(HERE / "tls_proxy.py"), "127.0.0.1", str(FL_PORT), SERVER_IP, str(FL_PORT), str(cert), str(key)]
    plan = {"mounts": [], "root": None, "cwd": "/", "user": None, "grace": 1, "argv": argv, "env": {"PATH": "/usr/bin:/bin"}}
    proxy = start_container("proxy", netns, plan, running.work / "proxy")
    running.extra.append(proxy)
    deadline = time.monotonic() + 20
    while "listening" not in proxy.output.read_text():
        assert proxy.alive() and time.monotonic() < deadline, proxy.tails()
        time.sleep(0.1)
    doctor = run_doctor(netns, running.kits[SITES[0]])
    assert doctor.code == 1, str(doctor)
    assert doctor.line("tcp")[0].startswith(f"OK    tcp     127.0.0.1 port {FL_PORT}"), str(doctor)
    assert doctor.verdict.startswith(
        f"FAIL: tls: something between this machine and the server presents a certificate for CN={DIALLED} issued by CN={PROXY_CA}"
    ), str(doctor)
    assert f"exempt {DIALLED} port {FL_PORT} from TLS inspection" in doctor.verdict


def test_rendered_three_site_federation_admits_all_three(running: Running) -> None:
    """Item 6: the rendered server configuration admits every declared site."""
    local = running.fed.rendered.built.get("ConfigMap", SERVER["tenant"], f"nvflare-{SERVER['name']}-local")
    assert json.loads(local["data"]["resources.json"])["servers"][0]["max_num_clients"] >= len(SITES)
    for site in SITES:
        running.fed.start_site(site, running.kits[site])
    registered = running.fed.wait_registered(set(SITES), flow.TIMEOUTS["registered"])
    assert sorted(registered) == sorted(SITES)
    assert running.fed.pod is not None and not REJECTED.search(running.fed.pod.log.read_text(errors="replace"))
