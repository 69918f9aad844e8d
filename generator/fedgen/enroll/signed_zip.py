"""The signed zip a site gets back (`nvflare cert approve`, NVFlare 2.9): exactly signed.json,
signed.json.sig, site.yaml, <site>.crt and rootCA.pem. Bytes in, a typed summary out, InputError otherwise;
which root the federation trusts is policy.py's to check."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from fedgen.enroll.fingerprints import chains_to, fingerprint, public_key_sha256, sha256_hex
from fedgen.enroll.zips import (
    REQUEST_ID,
    SHA256_HEX,
    TIMESTAMP,
    expect_members,
    fail,
    is_host,
    read_header,
    read_members,
    single_pem,
    site_yaml,
    string_field,
    subject_attribute,
)

SIGNED_ARTIFACT = "nvflare.cert.signed"
# The fields NVFlare 2.9 writes; anything more is refused (a place to smuggle data into a committed file).
_SIGNED_FIELDS = frozenset(
    {
        "artifact_type",
        "schema_version",
        "request_id",
        "approved_at",
        "project",
        "name",
        "org",
        "kind",
        "cert_type",
        "certificate",
        "cert_file",
        "rootca_file",
        "ca_info",
        "hashes",
        "scheme",
        "default_connection_security",
        "server",
    }
)
_SIGNED_HASHES = frozenset({"csr_sha256", "site_yaml_sha256", "certificate_sha256", "rootca_sha256", "public_key_sha256"})
_SERIAL = re.compile(r"^0x[0-9a-f]+$")


@dataclass(frozen=True)
class SignedInfo:
    """A signed zip that passed every check: the certificate chains to the rootCA.pem it carries."""

    project: str
    name: str
    org: str
    request_id: str
    approved_at: str
    certificate_pem: bytes
    rootca_pem: bytes
    rootca_fingerprint: str  # SHA256:AA:BB:... of rootCA.pem, as `nvflare package --fingerprint` wants it
    serial: str  # 0x..., as signed.json and `nvflare cert approve` print it
    not_after: datetime
    csr_sha256: str
    public_key_sha256: str
    server_host: str
    fl_port: int
    admin_port: int
    connect_to: str | None  # the host the site's kit dials (site.yaml's connect_to.host, the site's own choice)
    sha256: str  # of the whole zip

    @property
    def dialled(self) -> str:
        """The host the site's kit dials: its connect_to.host, else (NVFlare's default) the server's name."""
        return self.connect_to or self.server_host

    @property
    def client_profile(self) -> tuple[str, int]:
        """What of the operator's project profile reaches the site's kit through this zip (kit.client_profile)."""
        return self.server_host, self.fl_port


def _load_cert(data: bytes, member: str, what: str) -> x509.Certificate:
    single_pem(data, "CERTIFICATE", member, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise fail(what, f"{member} does not parse as a certificate ({exc})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def inspect_signed_zip(data: bytes, *, what: str = "signed zip") -> SignedInfo:
    """Check a signed zip made by `nvflare cert approve` for one client; InputError names the first problem.

    Checks: the same zip safety and no-key rules as requests; exactly signed.json, signed.json.sig, site.yaml,
    <name>.crt and rootCA.pem; signed.json has exactly NVFlare 2.9's fields, kind site, type client, NVFlare's
    name rules; rootCA.pem is one self-signed CA certificate whose CN is the project; <name>.crt is a leaf
    certificate with CN = the site and O = the org that rootCA.pem issued (signature checked); signed.json.sig
    is rootCA's signature over signed.json; the recorded digests (certificate, rootCA, site.yaml, public key)
    and the recorded serial and root fingerprint match the files.

    It does not say which root the federation trusts: compare `rootca_fingerprint` with the server's
    rootCA.pem (policy.check_signed does).
    """
    members = read_members(data, what)
    meta, project, name, org = read_header(
        members, "signed.json", fields=_SIGNED_FIELDS, artifact=SIGNED_ARTIFACT, called=("approval", "approval"), elsewhere="is this a request zip?", what=what
    )
    if meta["kind"] != "site" or meta["cert_type"] != "client":
        raise fail(what, f"holds a {meta['kind']!r}/{meta['cert_type']!r} certificate; only sites (client certificates) enroll this way")
    request_id = string_field(meta, "request_id", REQUEST_ID, "signed.json", what)
    approved_at = string_field(meta, "approved_at", TIMESTAMP, "signed.json", what)
    cert_name = f"{name}.crt"
    if meta["cert_file"] != cert_name or meta["rootca_file"] != "rootCA.pem":
        raise fail(what, "signed.json names other files than the zip holds")
    expect_members(members, {"signed.json", "signed.json.sig", "site.yaml", cert_name, "rootCA.pem"}, what)

    digests = meta["hashes"]
    if not isinstance(digests, dict) or set(digests) != _SIGNED_HASHES or not all(isinstance(v, str) and SHA256_HEX.fullmatch(v) for v in digests.values()):
        raise fail(what, f"signed.json: hashes must be exactly {', '.join(sorted(_SIGNED_HASHES))} (sha256 hex)")
    certificate = meta["certificate"]
    if (
        not isinstance(certificate, dict)
        or set(certificate) != {"serial", "valid_until"}
        or not isinstance(certificate.get("serial"), str)
        or not _SERIAL.fullmatch(certificate["serial"])
    ):
        raise fail(what, "signed.json: certificate must hold serial (0x...) and valid_until")
    ca_info = meta["ca_info"]
    if not isinstance(ca_info, dict) or set(ca_info) != {"provision_version", "rootCA_fingerprint"}:
        raise fail(what, "signed.json: ca_info must hold provision_version and rootCA_fingerprint")
    if not isinstance(ca_info["provision_version"], str) or not re.fullmatch(r"\d\d", ca_info["provision_version"]):
        raise fail(what, "signed.json: ca_info.provision_version must be two digits")
    server = meta["server"]
    if not isinstance(server, dict) or set(server) != {"host", "fed_learn_port", "admin_port"}:
        raise fail(what, "signed.json: server must hold host, fed_learn_port and admin_port")
    if not isinstance(server["host"], str) or not is_host(server["host"]):
        raise fail(what, f"signed.json: server.host {server['host']!r} is not a host name")
    for port_key in ("fed_learn_port", "admin_port"):
        port = server[port_key]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise fail(what, f"signed.json: server.{port_key} {port!r} is not a port")
    if meta["scheme"] not in ("grpc", "tcp", "http") or meta["default_connection_security"] not in ("clear", "tls", "mtls"):
        raise fail(what, "signed.json: scheme or default_connection_security is not one NVFlare knows")

    connect_to = site_yaml(members["site.yaml"], project, name, org, what)
    rootca_pem, cert_pem = members["rootCA.pem"], members[cert_name]
    root = _load_cert(rootca_pem, "rootCA.pem", what)
    cert = _load_cert(cert_pem, cert_name, what)
    if not _is_ca(root) or root.subject != root.issuer or not chains_to(root, root):
        raise fail(what, "rootCA.pem is not a self-signed CA certificate")
    if subject_attribute(root.subject, NameOID.COMMON_NAME) != project:
        raise fail(what, f"rootCA.pem is the root of project {subject_attribute(root.subject, NameOID.COMMON_NAME)!r}, not {project!r}")
    if _is_ca(cert):
        raise fail(what, f"{cert_name} is a CA certificate, not a site's")
    if not chains_to(cert, root):
        raise fail(what, f"{cert_name} was not issued by the rootCA.pem in the zip (tampered or mixed up)")
    cn = subject_attribute(cert.subject, NameOID.COMMON_NAME)
    if cn != name:
        raise fail(what, f"{cert_name} is for CN {cn!r}, not for site {name!r}")
    if subject_attribute(cert.subject, NameOID.ORGANIZATION_NAME) != org:
        raise fail(what, f"{cert_name} is for org {subject_attribute(cert.subject, NameOID.ORGANIZATION_NAME)!r}, not {org!r}")
    try:
        signature = base64.b64decode(members["signed.json.sig"].strip(), validate=True)
        root_key = root.public_key()
        if not isinstance(root_key, rsa.RSAPublicKey):
            raise InvalidSignature
        root_key.verify(signature, members["signed.json"], padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise fail(what, "signed.json.sig is not rootCA's signature over signed.json (tampered)") from None

    pk_digest = public_key_sha256(cert.public_key())
    checks = (
        (sha256_hex(cert_pem), digests["certificate_sha256"], cert_name),
        (sha256_hex(rootca_pem), digests["rootca_sha256"], "rootCA.pem"),
        (sha256_hex(members["site.yaml"]), digests["site_yaml_sha256"], "site.yaml"),
        (pk_digest, digests["public_key_sha256"], f"the public key of {cert_name}"),
    )
    for actual, recorded, label in checks:
        if actual != recorded:
            raise fail(what, f"{label} does not match the digest signed.json records")
    serial = hex(cert.serial_number)
    if certificate["serial"] != serial:
        raise fail(what, f"signed.json records serial {certificate['serial']}, {cert_name} has {serial}")
    root_fp = fingerprint(root)
    if str(ca_info["rootCA_fingerprint"]).upper() != root_fp:
        raise fail(what, "signed.json records another root CA fingerprint than rootCA.pem's")
    return SignedInfo(
        project=project,
        name=name,
        org=org,
        request_id=request_id,
        approved_at=approved_at,
        certificate_pem=cert_pem,
        rootca_pem=rootca_pem,
        rootca_fingerprint=root_fp,
        serial=serial,
        not_after=cert.not_valid_after_utc,
        csr_sha256=digests["csr_sha256"],
        public_key_sha256=pk_digest,
        server_host=server["host"],
        fl_port=server["fed_learn_port"],
        admin_port=server["admin_port"],
        connect_to=connect_to,
        sha256=sha256_hex(data),
    )
