"""A real Kubernetes API server for the tests: etcd and kube-apiserver built by scripts/bootstrap.sh.

One etcd per test session (`--unsafe-no-fsync`, a private data folder); every `ApiServer` is a kube-apiserver
of its own (own etcd prefix, so each is an empty cluster), on 127.0.0.1 free ports (or inside a network
namespace, for the end-to-end test), with certificates made here at test time: a CA, a serving certificate
for the address it listens on, a client certificate in group system:masters, a service-account key pair.
Ports: a free port is asked of the kernel and handed to the binary, and another process can take it in
between (the race of every "find a free port" helper), so a start that fails with "address already in use"
tries other ports, a few times. Readiness is asked of our own process only: etcd must name the member we
started, kube-apiserver must present the certificate we made; a stranger that took the port is never ours.
Processes start with PR_SET_PDEATHSIG (they die with the test process even when it is killed) and are
stopped by the PIDs we hold: SIGTERM, then SIGKILL. Never by name.

No kubelet and no controllers run: pods never start, Deployments stay unavailable, LoadBalancers get no
address and SealedSecrets are never unsealed. Tests write status subresources themselves.
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.procs import _die_with_the_test
from tests.support import REPO_ROOT

TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
START_TIMEOUT = 60.0  # /readyz answers ok after 3-4 s on an idle machine; shared cores are slower
STOP_TIMEOUT = 15.0
SERVICE_CIDR = "10.96.0.0/16"
PORT_ATTEMPTS = 5


class KubeApiError(AssertionError):
    """The API server or etcd could not be started: a test failure, never a skip."""


def binary(name: str) -> Path:
    path = TOOLS_BIN / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise KubeApiError(f"{path} is missing: run scripts/bootstrap.sh (it builds kube-apiserver and etcd once, ~12 minutes)")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _lost_port(process: Process) -> bool:
    """The process exited because another one took its port between free_port() and its bind."""
    return not process.alive() and "address already in use" in process.tail(200)


# ------------------------------------------------------------------------------------------ certificates


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Credentials:
    cert: bytes  # PEM
    key: bytes  # PEM


@dataclass(frozen=True)
class Authority:
    """A CA made at test time; it signs serving and client certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str) -> Authority:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return _pem_cert(self.cert)

    def issue(
        self, common_name: str, *, organizations: tuple[str, ...] = (), ips: tuple[str, ...] = (), dns: tuple[str, ...] = (), server: bool = False
    ) -> Credentials:
        key = _key()
        names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        names.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(names))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if ips or dns:
            alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            alt += [x509.DNSName(d) for d in dns]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return Credentials(_pem_cert(builder.sign(self.key, hashes.SHA256())), _pem_key(key))


# ------------------------------------------------------------------------------------------- processes


@dataclass
class Process:
    label: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"<cannot read {self.log}: {exc}>"

    def stop(self) -> str:
        """SIGTERM to our PID, SIGKILL after STOP_TIMEOUT; returns how it ended."""
        if self.popen.poll() is not None:
            return "exited"
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT)
            return "terminated"
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(STOP_TIMEOUT)
            return "killed"


def start(label: str, argv: list[str], folder: Path, *, netns: str | None = None) -> Process:
    log = folder / f"{label}.log"
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]  # ip execs the command: our PID stays the process's PID
    with log.open("wb") as out:
        popen = subprocess.Popen(  # noqa: S603 - fixed argument lists
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_the_test
        )
    return Process(label, popen, log)


def wait_until(what: str, ok: Callable[[], bool], processes: list[Process], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            if not p.alive():
                raise KubeApiError(f"{p.label} exited ({p.popen.returncode}) before {what}:\n{p.tail()}")
        if ok():
            return
        time.sleep(0.2)
    raise KubeApiError(f"{what} not within {timeout} s:\n" + "\n".join(f"--- {p.label}\n{p.tail()}" for p in processes))


# ------------------------------------------------------------------------------------------------- etcd


@dataclass
class Etcd:
    folder: Path
    netns: str | None = None
    client_port: int = 0
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def member(self) -> str:
        """The member name of this process (the readiness check asks for it)."""
        return f"fedgen-test-{self.client_port}"

    def start(self) -> Etcd:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(PORT_ATTEMPTS):
            # Inside a fresh network namespace every port is free; in ours, ask the kernel.
            self.client_port, peer = (2379, 2380) if self.netns else (free_port(), free_port())
            self.process = self._start_once(peer)
            try:
                wait_until("etcd answers /health", self._healthy, [self.process])
                return self
            except KubeApiError:
                if self.netns or not _lost_port(self.process):
                    raise
        raise KubeApiError(f"etcd found no free port in {PORT_ATTEMPTS} attempts")

    def _start_once(self, peer: int) -> Process:
        data = self.folder / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)  # a start that lost its port may have begun a member there
        argv = [
            str(binary("etcd")),
            f"--name={self.member}",
            f"--data-dir={data}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster={self.member}=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        return start("etcd", argv, self.folder, netns=self.netns)

    def _healthy(self) -> bool:
        if self.netns:
            proc = subprocess.run(["ip", "netns", "exec", self.netns, "python3", "-c", _HEALTH_PROBE, f"{self.url}/health"], capture_output=True, timeout=10)
            return proc.returncode == 0
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:  # noqa: S310 - loopback http
                if resp.status != 200:
                    return False
            # Another etcd that took our port answers /health too; only ours has our member.
            return [m.get("name") for m in self._call("cluster/member/list", {}).get("members") or []] == [self.member]
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self) -> str:
        return self.process.stop() if self.process else "not started"

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/v3/{method}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback http
            return dict(json.loads(resp.read()))

    def copy_prefix(self, source: str, target: str) -> int:
        """Copy every key under `source` to `target` through etcd's JSON gateway: an API server started on
        `target` finds the cluster where the one on `source` left it (CRDs established: installing them
        costs far more than starting a server). Returns the number of keys."""

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        start = source.encode()
        end = start[:-1] + bytes([start[-1] + 1])
        found = self._call("kv/range", {"key": b64(start), "range_end": b64(end)})
        puts = []
        for kv in found.get("kvs") or []:
            key = base64.b64decode(kv["key"])
            puts.append({"requestPut": {"key": b64(target.encode() + key[len(start) :]), "value": kv.get("value", "")}})
        for i in range(0, len(puts), 100):  # etcd allows 128 operations per transaction
            self._call("kv/txn", {"success": puts[i : i + 100]})
        return len(puts)


_HEALTH_PROBE = "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)"


# ------------------------------------------------------------------------------------------- API server


@dataclass
class ApiServer:
    """One kube-apiserver: an empty cluster of its own (own etcd prefix)."""

    name: str
    folder: Path
    etcd: Etcd
    host: str = "127.0.0.1"  # the address it serves on (and its certificate names)
    template: str | None = None  # an etcd prefix to start from (a copy of it), instead of an empty cluster
    port: int = 0
    ca: Authority | None = None
    admin: Credentials | None = None
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def prefix(self) -> str:
        return f"/fedgen-test/{self.name}/"

    def start(self) -> ApiServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.template is not None:
            self.etcd.copy_prefix(self.template, self.prefix)
        self.ca = Authority.create(f"fedgen-test-ca-{self.name}")
        serving = self.ca.issue("kube-apiserver", ips=(self.host, "10.96.0.1"), dns=("localhost", "kubernetes", "kubernetes.default.svc"), server=True)
        self.admin = self.ca.issue("fedgen-test-admin", organizations=("system:masters",))
        sa_key = _key()
        files = {
            "ca.crt": self.ca.pem,
            "serving.crt": serving.cert,
            "serving.key": serving.key,
            "sa.key": _pem_key(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        }
        for name, data in files.items():
            path = self.folder / name
            path.write_bytes(data)
            path.chmod(0o600)
        for _ in range(PORT_ATTEMPTS):
            self.port = 6443 if self.etcd.netns else free_port(self.host)
            self.process = self._start_once()
            kubeconfig = self.write_kubeconfig(self.folder / "kubeconfig", context=self.name)
            # Only our server presents the certificate of our CA: another that took the port never looks ready.
            try:
                wait_until(
                    f"kube-apiserver {self.name} answers /readyz",
                    functools.partial(self._ready, kubeconfig),
                    [self.process, *([self.etcd.process] if self.etcd.process else [])],
                )
                return self
            except KubeApiError:
                if self.etcd.netns or not _lost_port(self.process):
                    raise
        raise KubeApiError(f"kube-apiserver {self.name} found no free port in {PORT_ATTEMPTS} attempts")

    def _start_once(self) -> Process:
        f = self.folder
        argv = [
            str(binary("kube-apiserver")),
            f"--etcd-servers={self.etcd.url}",
            f"--etcd-prefix={self.prefix.rstrip('/')}",
            f"--bind-address={'0.0.0.0' if self.etcd.netns else self.host}",
            f"--advertise-address={self.host}",
            f"--secure-port={self.port}",
            f"--tls-cert-file={f / 'serving.crt'}",
            f"--tls-private-key-file={f / 'serving.key'}",
            f"--client-ca-file={f / 'ca.crt'}",
            f"--service-account-key-file={f / 'sa.pub'}",
            f"--service-account-signing-key-file={f / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC,Node",
            "--anonymous-auth=false",
            "--profiling=false",
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--v=0",
        ]
        return start(f"kube-apiserver-{self.name}", argv, self.folder, netns=self.etcd.netns)

    def _ready(self, kubeconfig: Path) -> bool:
        if self.etcd.netns:
            argv = ["ip", "netns", "exec", self.etcd.netns, "kubectl", f"--kubeconfig={kubeconfig}", "get", "--raw=/readyz", "--request-timeout=3s"]
            return subprocess.run(argv, capture_output=True, timeout=15).returncode == 0
        assert self.ca is not None and self.admin is not None
        context = ssl.create_default_context(cadata=self.ca.pem.decode())
        context.load_cert_chain(self.folder / f"{self.name}.crt", self.folder / f"{self.name}.key")
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=3, context=context) as resp:  # noqa: S310
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def write_kubeconfig(self, path: Path, *, context: str, credentials: Credentials | None = None) -> Path:
        """A kubeconfig with one context for this server (the admin's client certificate by default)."""
        return write_kubeconfig(path, {context: (self, credentials)})

    def stop(self) -> str:
        return self.process.stop() if self.process else "not started"


def write_kubeconfig(path: Path, contexts: dict[str, tuple[ApiServer, Credentials | None]], current: str | None = None) -> Path:
    """One kubeconfig holding a context per (server, credentials); certificate files beside it, owner-only."""
    clusters, users, entries = [], [], []
    for name, (server, credentials) in sorted(contexts.items()):
        assert server.ca is not None and server.admin is not None
        creds = credentials or server.admin
        folder = path.parent
        cert, key, ca = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}-ca.crt"
        for target, data in ((cert, creds.cert), (key, creds.key), (ca, server.ca.pem)):
            target.write_bytes(data)
            target.chmod(0o600)
        clusters.append({"name": name, "cluster": {"server": server.url, "certificate-authority": str(ca)}})
        users.append({"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}})
        entries.append({"name": name, "context": {"cluster": name, "user": name}})
    doc = {"apiVersion": "v1", "kind": "Config", "clusters": clusters, "users": users, "contexts": entries, "current-context": current or entries[0]["name"]}
    path.write_text(json.dumps(doc, indent=2) + "\n")  # JSON is YAML: every kubeconfig reader takes it
    path.chmod(0o600)
    return path


class Clusters:
    """Starts API servers (each a fresh cluster holding the CRDs) and stops every one of them by PID."""

    def __init__(self, etcd: Etcd, template: str, factory: Any) -> None:
        self.etcd, self.template, self.factory = etcd, template, factory
        self.started: list[ApiServer] = []

    def __call__(self, name: str = "cluster") -> ApiServer:
        api = ApiServer(f"{name}-{len(self.started)}-{os.getpid()}-{id(self):x}", self.factory.mktemp(f"kube-{name}"), self.etcd, template=self.template)
        self.started.append(api)
        api.start()
        return api

    def stop(self) -> None:
        for api in self.started:
            api.stop()
