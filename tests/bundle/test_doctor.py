"""The connectivity doctor shipped in bundles (the package fedgen.bundle.doctor), piece by piece and without a federation:
its certificate reader against cryptography's, the clock and version checks, and TLS outcomes against small
local servers. tests/e2e/test_connectivity.py runs it from real bundles against a real NVFlare server."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedgen.bundle.build import doctor_files
from fedgen.bundle.doctor import checks, run
from fedgen.bundle.doctor import x509 as doctor_x509
from fedgen.bundle.doctor.kit import Kit, KitError, load_kit
from fedgen.bundle.doctor.tls import H2_PREFACE, check_tls
from tests.support import refusing_port
from tests.validate.support import cert_pem, certificate, pem_key, rsa_key

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
SERVER = "flserver"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_reads_subject_issuer_and_validity_like_cryptography() -> None:
    key = rsa_key()
    names = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "site-ä"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hospital_a"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
    ])  # fmt: skip
    for not_after in (dt.datetime(2049, 12, 31, 23, 59, 58, tzinfo=dt.timezone.utc), dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)):
        # UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280)
        cert = (
            x509.CertificateBuilder().subject_name(names).issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]))
            .public_key(key.public_key()).serial_number(7).not_valid_before(NOW).not_valid_after(not_after)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        got = doctor_x509.parse_pem(cert_pem(cert))
        assert got.subject == (("CN", "site-ä"), ("O", "hospital_a"), ("C", "DE"))
        assert got.issuer == (("CN", "root"),) and got.cn == "site-ä"
        assert (got.not_before, got.not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
        assert got.sha256 == cert.fingerprint(hashes.SHA256()).hex()


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\x02\x01\x00", b"\x04\x02ab"])
def test_malformed_certificates_are_value_errors(data: bytes) -> None:
    with pytest.raises(ValueError):
        doctor_x509.parse_der(data)
    with pytest.raises(ValueError):
        doctor_x509.parse_pem("no certificate here")


@pytest.mark.parametrize(
    ("before", "after", "status", "words"),
    [
        (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300), "OK", "valid until 2027-12-26"),
        (NOW + dt.timedelta(hours=2), NOW + dt.timedelta(days=300), "FAIL", "before the kit becomes valid"),
        (NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=1), "FAIL", "the kit expired on 2027-02-28"),
        (NOW - dt.timedelta(days=300), NOW + dt.timedelta(days=5), "WARN", "expires in 5 days"),
    ],
)
def test_clock_against_validity(before: dt.datetime, after: dt.datetime, status: str, words: str) -> None:
    cert = doctor_x509.Cert((("CN", "x"),), (("CN", "r"),), before, after, "0")
    line = checks.check_validity("the kit", cert, NOW, "renew it")
    assert (line.status, line.check) == (status, "clock") and words in line.text, line
    assert (line.fix != "") == (status == "FAIL")


def test_nvflare_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as metadata

    assert checks.check_nvflare("2.9.0").status == "OK"  # this venv runs the federation's NVFlare
    monkeypatch.setattr(metadata, "version", lambda _: "2.8.1")
    line = checks.check_nvflare("2.9.0")
    assert line.status == "FAIL" and "pip install nvflare==2.9.0" in line.fix and "docker" in line.fix

    def absent(_: str) -> str:
        raise metadata.PackageNotFoundError("nvflare")

    monkeypatch.setattr(metadata, "version", absent)
    line = checks.check_nvflare("2.9.0")
    assert line.status == "WARN" and "fine for the docker path" in line.text


def test_the_shipped_folder_needs_only_the_standard_library(tmp_path: Path) -> None:
    """The bundle's doctor/ is every module of the package, byte for byte, and runs as a folder from the kit."""
    package = Path(run.__file__).parent
    assert doctor_files() == {f"doctor/{p.name}": p.read_bytes() for p in sorted(package.glob("*.py"))}
    assert {"doctor/__main__.py", "doctor/run.py", "doctor/tls.py"} <= set(doctor_files())
    for path, data in doctor_files().items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_bytes(data)
    # -I -S: no site-packages, no user site, no PYTHONPATH: every import must come from the standard library
    # (or the folder itself); run from another folder, the kit defaults to the folder's parent.
    proc = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "doctor"), "--help"], capture_output=True, text=True, timeout=30, cwd="/")
    assert proc.returncode == 0 and "--nvflare" in proc.stdout, proc.stderr
    missing = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "doctor"), "--nvflare", "2.9.0",
                              "--fl-port", "1", "--admin-port", "2"], capture_output=True, text=True, timeout=30, cwd="/")  # fmt: skip
    assert missing.returncode == 1, missing.stderr
    assert missing.stdout.splitlines()[-1].startswith(f"FAIL: kit: {tmp_path / 'startup'} holds neither fed_client.json nor fed_admin.json - ")


# ----------------------------------------------------------------------------------------- TLS outcomes


class Pki:
    """A root CA, the server's certificate (CN = the server) and a site's, all made now."""

    def __init__(self, folder: Path) -> None:
        self.root_key = rsa_key()
        self.root = certificate("genomics", self.root_key)
        self.server_key = rsa_key()
        self.server = certificate(SERVER, self.server_key, issuer=("genomics", self.root_key))
        site_key = rsa_key()
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {name: folder / name for name in ("rootCA.pem", "server.crt", "server.key")}
        self.files["rootCA.pem"].write_text(cert_pem(self.root))
        self.files["server.crt"].write_text(cert_pem(self.server))
        self.files["server.key"].write_bytes(pem_key(self.server_key))
        self.site_cert = cert_pem(certificate("site-a", site_key, issuer=("genomics", self.root_key)))
        self.site_key = pem_key(site_key)


def _kit(folder: Path, pki: Pki, port: int) -> Kit:
    startup = folder / "startup"
    startup.mkdir(parents=True)
    (startup / "rootCA.pem").write_text(cert_pem(pki.root))
    (startup / "client.crt").write_text(pki.site_cert)
    (startup / "client.key").write_bytes(pki.site_key)
    fed_client = {
        "format_version": 2,
        "servers": [{"name": "genomics", "service": {"target": f"127.0.0.1:{port}", "scheme": "grpc"}, "identity": SERVER}],
        "client": {"ssl_private_key": "client.key", "ssl_cert": "client.crt", "ssl_root_cert": "rootCA.pem", "fqsn": "site-a", "connection_security": "mtls"},
    }
    (startup / "fed_client.json").write_text(json.dumps(fed_client))
    return load_kit(folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def _serve(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A local server on 127.0.0.1 handling each connection with `handle`; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    handle(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()


def _tls_server(pki: Pki, trust: Path, cert: Path | None = None, key: Path | None = None) -> Callable[[socket.socket], None]:
    """Mutual TLS as NVFlare's server does it: its certificate, and the client's verified against `trust`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert or pki.files["server.crt"]), str(key or pki.files["server.key"]))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(trust))

    def handle(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(len(H2_PREFACE)):
                tls.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # a SETTINGS frame back

    return handle


def _run(kit: Kit) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = run.diagnose(
        kit, want="2.9.0", ports={"fl": kit.port, "admin": kit.port}, server_address=None, timeout=5, now=dt.datetime.now(dt.timezone.utc), emit=lines.append
    )
    return code, lines


def test_a_server_of_the_kits_ca_that_accepts_the_kit_is_ok(pki: Pki, tmp_path: Path) -> None:
    with _serve(_tls_server(pki, pki.files["rootCA.pem"])) as port:
        code, lines = _run(_kit(tmp_path / "kit", pki, port))
        assert code == 0 and lines[-1] == "OK", lines
        assert any(line.startswith("OK    tls     server CN=flserver verified") for line in lines), lines
        assert lines[-2] == f"egress rule: allow outbound TCP from this machine to 127.0.0.1 (127.0.0.1) port {port}; no inbound port is needed"


def test_a_server_that_refuses_the_kits_certificate(pki: Pki, tmp_path: Path) -> None:
    other = tmp_path / "other-root.pem"
    other.write_text(cert_pem(certificate("another-root", rsa_key())))
    with _serve(_tls_server(pki, other)) as port:
        code, lines = _run(_kit(tmp_path / "kit", pki, port))
        assert code == 1, lines
        assert "refused this kit's certificate" in lines[-1] and "fedgen client-bundle site-a" in lines[-1], lines


def test_something_that_does_not_speak_tls(pki: Pki, tmp_path: Path) -> None:
    with _serve(lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as port:
        code, lines = _run(_kit(tmp_path / "kit", pki, port))
        assert code == 1 and lines[-1].startswith("FAIL: tls: what answers on 127.0.0.1 port"), lines
        assert "it is not the NVFlare server" in lines[-1]


def test_a_server_certificate_for_another_name(pki: Pki, tmp_path: Path) -> None:
    """Chain fine, CN wrong: the dialled name reaches another server of the same CA."""
    key = rsa_key()
    (tmp_path / "other.crt").write_text(cert_pem(certificate("other-server", key, issuer=("genomics", pki.root_key))))
    (tmp_path / "other.key").write_bytes(pem_key(key))
    with _serve(_tls_server(pki, pki.files["rootCA.pem"], tmp_path / "other.crt", tmp_path / "other.key")) as port:
        code, lines = _run(_kit(tmp_path / "kit", pki, port))
        assert code == 1 and lines[-1].startswith("FAIL: tls: the certificate presented is for CN=other-server, the kit expects CN=flserver"), lines


def test_nothing_listening_is_a_refused_port(pki: Pki, tmp_path: Path) -> None:
    with refusing_port() as port:
        code, lines = _run(_kit(tmp_path / "kit", pki, port))
    assert code == 1 and lines[-1].startswith(f"FAIL: tcp: 127.0.0.1 port {port} (fl) refused the connection"), lines
    assert any(line.startswith("SKIP  tls") for line in lines)


def test_unreadable_key_says_who_must_run_it(pki: Pki, tmp_path: Path) -> None:
    kit = _kit(tmp_path / "kit", pki, 1)
    kit.key.write_text("garbage")
    line = check_tls(kit, doctor_x509.parse_pem(cert_pem(pki.root)), "127.0.0.1", 1).lines[0]
    assert line.status == "FAIL" and "do not load" in line.text and "sha256sum -c SHA256SUMS" in line.fix


def test_admin_kit_is_read_from_fed_admin_json(tmp_path: Path) -> None:
    startup = tmp_path / "admin" / "startup"
    startup.mkdir(parents=True)
    (startup / "fed_admin.json").write_text(json.dumps({"admin": {
        "username": "lead@example.org", "host": "fl.example.org", "port": 9103, "server_identity": SERVER,
        "connection_security": "mtls", "client_cert": "client.crt", "client_key": "client.key", "ca_cert": "rootCA.pem"}}))  # fmt: skip
    kit = load_kit(tmp_path / "admin")
    assert (kit.kind, kit.name, kit.host, kit.port, kit.identity) == ("admin", "lead@example.org", "fl.example.org", 9103, SERVER)
    (startup / "fed_admin.json").write_text("{}")
    with pytest.raises(KitError, match="incomplete"):
        load_kit(tmp_path / "admin")


def test_a_certificate_over_an_ec_key_parses() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    assert doctor_x509.parse_der(_der(cert)).cn == "ec"
