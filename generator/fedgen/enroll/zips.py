"""Pure checks of the two files an enrollment exchanges: bytes in, a typed summary out, InputError otherwise.

The request zip (`nvflare cert request`, NVFlare 2.9) holds exactly request.json, site.yaml and <site>.csr.
The signed zip (`nvflare cert approve`) holds exactly signed.json, signed.json.sig, site.yaml, <site>.crt and
rootCA.pem. Both are small; anything else inside (another member, a folder, a link, a private key, a field
NVFlare 2.9 does not write) is refused, so whatever passes here is safe to commit and to hand to NVFlare.

Nothing here reads files, the spec or the state: `fedgen enroll approve` and `fedgen validate` call these on
bytes and decide what a failure means for them (exit 2, or a finding). Checks against a spec are in policy.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from fedgen.errors import InputError
from fedgen.untrusted import check_yaml_depth, loads_json

# Size caps. A 2.9 request zip is about 1.5 KB and a signed zip about 4 KB.
MAX_ZIP_BYTES = 64 * 1024
MAX_MEMBER_BYTES = 32 * 1024
MAX_MEMBERS = 8
MIN_RSA_BITS = 2048

REQUEST_ARTIFACT = "nvflare.cert.request"
SIGNED_ARTIFACT = "nvflare.cert.signed"
SCHEMA_VERSION = "1"

# NVFlare's name rules (nvflare/apis/utils/format_check.py and the distributed-provisioning CLI): a client name
# is letters, digits, '-' and '_' (and a certificate name starts with a letter or digit, at most 64); an org
# is letters, digits and '_'; a project starts with a letter or digit and may hold '.', '-' and '_'.
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ORG_NAME = re.compile(r"^[A-Za-z0-9_]+$")
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REQUEST_ID = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_SERIAL = re.compile(r"^0x[0-9a-f]+$")
# Every PEM private key label ends in "PRIVATE KEY" (PKCS#8, encrypted PKCS#8, RSA, EC, DSA, OpenSSH).
_KEY_MARKER = b"PRIVATE KEY"

# The fields NVFlare 2.9 writes; anything more is refused (a place to smuggle data into a committed file).
_REQUEST_FIELDS = frozenset(
    {"artifact_type", "schema_version", "request_id", "created_at", "project", "name", "org", "kind", "cert_type",
     "cert_role", "csr_sha256", "public_key_sha256", "site_yaml_sha256"}
)
_SIGNED_FIELDS = frozenset(
    {"artifact_type", "schema_version", "request_id", "approved_at", "project", "name", "org", "kind", "cert_type",
     "certificate", "cert_file", "rootca_file", "ca_info", "hashes", "scheme", "default_connection_security", "server"}
)
_SIGNED_HASHES = frozenset({"csr_sha256", "site_yaml_sha256", "certificate_sha256", "rootca_sha256", "public_key_sha256"})
_SITE_TOP = frozenset({"name", "participants", "description"})
_SITE_PARTICIPANT = frozenset({"name", "type", "org", "connect_to"})
_CONNECT_TO = frozenset({"host", "port"})


class PrivateKeyFound(InputError):
    """The zip carries private key material (validate reports it as a secrets finding, not a shape one)."""


@dataclass(frozen=True)
class RequestInfo:
    """A request zip that passed every check."""

    project: str
    name: str
    org: str
    request_id: str
    created_at: str
    connect_to: str | None  # the host the site's kit will dial, when its participant YAML says
    csr_pem: bytes
    csr_sha256: str
    public_key_sha256: str  # of the CSR's SubjectPublicKeyInfo (DER): what the signed certificate must carry
    key_bits: int
    sha256: str  # of the whole zip


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
    sha256: str  # of the whole zip


# ------------------------------------------------------------------------------------------------ helpers


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(cert: x509.Certificate | bytes) -> str:
    """SHA-256 fingerprint of a certificate (PEM bytes or loaded) as SHA256:AA:BB:... (upper case)."""
    if isinstance(cert, (bytes, bytearray)):
        cert = x509.load_pem_x509_certificate(bytes(cert))
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def public_key_sha256(key: Any) -> str:
    return sha256_hex(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def key_fingerprint(public_key_sha256_hex: str) -> str:
    """A public key's SHA-256 (hex of its SubjectPublicKeyInfo, as request.json records it) as SHA256:AA:BB:...,
    the form a site reads out to the operator over a second channel."""
    digest = public_key_sha256_hex.upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def certificate_key_sha256(pem: bytes) -> str:
    """public_key_sha256 of the key a PEM certificate carries."""
    return public_key_sha256(x509.load_pem_x509_certificate(pem).public_key())


def holds_private_key(data: bytes) -> bool:
    """True when the bytes carry a PEM private key marker (any kind)."""
    return _KEY_MARKER in data


def chains_to(cert: x509.Certificate, root: x509.Certificate) -> bool:
    """True when `root` issued `cert` (issuer name and signature)."""
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _fail(what: str, message: str) -> InputError:
    return InputError(f"{what}: {message}")


def _read_members(data: bytes, what: str) -> dict[str, bytes]:
    """Every member of a small, flat zip, after the safety checks; refuses any private key inside."""
    if len(data) > MAX_ZIP_BYTES:
        raise _fail(what, f"{len(data)} bytes, more than the {MAX_ZIP_BYTES} an enrollment zip may have")
    if not data.startswith(b"PK\x03\x04"):
        raise _fail(what, "not a zip file")
    if holds_private_key(data):
        raise PrivateKeyFound(f"{what}: holds a private key; never send or commit a key (it stays in the site's request folder)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise _fail(what, f"not a readable zip ({exc})") from None
    with zf:
        if zf.comment:
            raise _fail(what, "carries a zip comment; NVFlare writes none")
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _fail(what, f"{len(infos)} members, more than {MAX_MEMBERS}")
        out: dict[str, bytes] = {}
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            unsafe = (
                not name
                or name in (".", "..")
                or name.startswith(".")
                or "/" in name
                or "\\" in name
                or any(ord(c) < 32 or ord(c) == 127 for c in name)
                or info.is_dir()
                or stat.S_IFMT(mode) not in (0, stat.S_IFREG)
            )
            if unsafe:
                raise _fail(what, f"unsafe member {name!r} (only plain files at the top of the zip are allowed: no folders, links or paths)")
            if name in out:
                raise _fail(what, f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise _fail(what, f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _fail(what, f"member {name!r} uses an unsupported compression method")
            if info.file_size > MAX_MEMBER_BYTES:
                raise _fail(what, f"member {name!r} is {info.file_size} bytes, more than {MAX_MEMBER_BYTES}")
            try:
                with zf.open(info) as fh:
                    content = fh.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                raise _fail(what, f"member {name!r} cannot be read ({exc})") from None
            if len(content) > MAX_MEMBER_BYTES or len(content) != info.file_size:
                raise _fail(what, f"member {name!r} is larger than its header says")
            if holds_private_key(content) or name.lower().endswith((".key", ".p12", ".pfx", ".jks")):
                raise PrivateKeyFound(f"{what}: member {name!r} holds a private key; never send or commit a key (it stays in the site's request folder)")
            out[name] = content
    return out


def _expect_members(members: Mapping[str, bytes], expected: set[str], what: str) -> None:
    if set(members) != expected:
        extra = sorted(set(members) - expected)
        missing = sorted(expected - set(members))
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise _fail(what, f"must hold exactly {', '.join(sorted(expected))} ({'; '.join(parts)})")


def _json_object(data: bytes, member: str, what: str) -> dict[str, Any]:
    try:
        value = loads_json(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(what, f"{member} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _fail(what, f"{member} is not a JSON object")
    return value


def _yaml_mapping(data: bytes, member: str, what: str) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = data.decode("utf-8")
        check_yaml_depth(text)
        value = YAML(typ="safe", pure=True).load(text)
    except (UnicodeDecodeError, YAMLError, ValueError) as exc:
        raise _fail(what, f"{member} is not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise _fail(what, f"{member} is not a YAML mapping")
    return value


def _string(doc: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None, member: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
        raise _fail(what, f"{member}: {key} {value!r} is missing or malformed")
    return value


def _check_names(project: str, name: str, org: str, what: str) -> None:
    if not PROJECT_NAME.fullmatch(project):
        raise _fail(what, f"project {project!r} breaks NVFlare's project name rule ({PROJECT_NAME.pattern})")
    if not SITE_NAME.fullmatch(name):
        raise _fail(what, f"site name {name!r} breaks NVFlare's client name rule ({SITE_NAME.pattern})")
    if not ORG_NAME.fullmatch(org):
        raise _fail(what, f"org {org!r} breaks NVFlare's org rule (letters, digits and '_' only)")


def _single_pem(data: bytes, label: str, member: str, what: str) -> bytes:
    """The member must be exactly one PEM block of `label` (trailing newline allowed), nothing else."""
    text = data.strip()
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    if not (text.startswith(begin) and text.endswith(end)) or text.count(b"-----BEGIN") != 1:
        raise _fail(what, f"{member} must hold exactly one PEM {label} and nothing else")
    return data


def _site_yaml(data: bytes, project: str, name: str, org: str, what: str) -> str | None:
    """NVFlare's site.yaml for one client: project name and one participant; returns connect_to.host."""
    doc = _yaml_mapping(data, "site.yaml", what)
    extra = sorted(set(map(str, doc)) - _SITE_TOP)
    if extra:
        raise _fail(what, f"site.yaml has unexpected fields {', '.join(extra)} (make the request from the participant.yaml of `fedgen enroll kit`)")
    description = doc.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        raise _fail(what, "site.yaml: description must be a short string")
    if doc.get("name") != project:
        raise _fail(what, f"site.yaml names project {doc.get('name')!r}, request.json {project!r}")
    participants = doc.get("participants")
    if not isinstance(participants, list) or len(participants) != 1 or not isinstance(participants[0], dict):
        raise _fail(what, "site.yaml must list exactly one participant")
    p = participants[0]
    extra = sorted(set(map(str, p)) - _SITE_PARTICIPANT)
    if extra:
        raise _fail(what, f"site.yaml: the participant has unexpected fields {', '.join(extra)}")
    if p.get("name") != name or p.get("org") != org or p.get("type") != "client":
        raise _fail(what, f"site.yaml's participant ({p.get('name')!r}, org {p.get('org')!r}, type {p.get('type')!r}) does not match request ({name!r}, org {org!r}, client)")
    connect_to = p.get("connect_to")
    if connect_to is None:
        return None
    if not isinstance(connect_to, dict) or set(map(str, connect_to)) - _CONNECT_TO:
        raise _fail(what, "site.yaml: connect_to may hold only host and port")
    host = connect_to.get("host")
    if not isinstance(host, str) or not _is_host(host):
        raise _fail(what, f"site.yaml: connect_to.host {host!r} is not a host name or IP address")
    port = connect_to.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
        raise _fail(what, f"site.yaml: connect_to.port {port!r} is not a port")
    return host


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(value))


def _subject(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------------------------------ request


def inspect_request_zip(data: bytes, *, what: str = "request") -> RequestInfo:
    """Check a request zip made by `nvflare cert request` for one client; InputError names the first problem.

    Checks: size caps; a flat zip of exactly request.json, site.yaml and <name>.csr (no folders, links,
    paths, encryption, comment); no private key anywhere; request.json has exactly NVFlare 2.9's fields, kind
    site and type client; NVFlare's name rules for project, site and org; site.yaml names the same project and
    participant; the recorded digests of site.yaml, the CSR and its public key match; the CSR parses, its
    signature is valid, its CN is the site, its O the org, its role client, and its key is RSA of at least
    2048 bits.
    """
    members = _read_members(data, what)
    if "request.json" not in members:
        raise _fail(what, "has no request.json (is this a signed zip? approve takes the .request.zip)")
    meta = _json_object(members["request.json"], "request.json", what)
    extra = sorted(set(meta) - _REQUEST_FIELDS)
    missing = sorted(_REQUEST_FIELDS - {"cert_role"} - set(meta))
    if extra or missing:
        raise _fail(what, f"request.json is not NVFlare 2.9's request ({'unexpected ' + ', '.join(extra) if extra else ''}{'; ' if extra and missing else ''}{'missing ' + ', '.join(missing) if missing else ''})")
    if meta["artifact_type"] != REQUEST_ARTIFACT or meta["schema_version"] != SCHEMA_VERSION:
        raise _fail(what, f"request.json is a {meta['artifact_type']!r} v{meta['schema_version']!r}, not an NVFlare certificate request v{SCHEMA_VERSION}")
    project = _string(meta, "project", None, "request.json", what)
    name = _string(meta, "name", None, "request.json", what)
    org = _string(meta, "org", None, "request.json", what)
    _check_names(project, name, org, what)
    if meta["kind"] != "site" or meta["cert_type"] != "client" or meta.get("cert_role") is not None:
        raise _fail(what, f"requests a {meta['kind']!r}/{meta['cert_type']!r} certificate; only sites (client certificates) enroll this way")
    request_id = _string(meta, "request_id", _REQUEST_ID, "request.json", what)
    created_at = _string(meta, "created_at", _TIMESTAMP, "request.json", what)
    for digest in ("csr_sha256", "public_key_sha256", "site_yaml_sha256"):
        _string(meta, digest, _SHA256_HEX, "request.json", what)
    _expect_members(members, {"request.json", "site.yaml", f"{name}.csr"}, what)

    connect_to = _site_yaml(members["site.yaml"], project, name, org, what)
    if sha256_hex(members["site.yaml"]) != meta["site_yaml_sha256"]:
        raise _fail(what, "site.yaml does not match the digest request.json records (edited after the request was made?)")

    csr_pem = _single_pem(members[f"{name}.csr"], "CERTIFICATE REQUEST", f"{name}.csr", what)
    if sha256_hex(csr_pem) != meta["csr_sha256"]:
        raise _fail(what, f"{name}.csr does not match the digest request.json records (edited after the request was made?)")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise _fail(what, f"{name}.csr does not parse as a certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise _fail(what, f"{name}.csr has an invalid signature (tampered)")
    key = csr.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _fail(what, f"{name}.csr carries a {type(key).__name__} key; NVFlare sites use RSA")
    if key.key_size < MIN_RSA_BITS:
        raise _fail(what, f"{name}.csr carries an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    cn = _subject(csr.subject, NameOID.COMMON_NAME)
    if cn != name:
        raise _fail(what, f"{name}.csr is for CN {cn!r}, not for site {name!r}")
    csr_org = _subject(csr.subject, NameOID.ORGANIZATION_NAME)
    if csr_org != org:
        raise _fail(what, f"{name}.csr is for org {csr_org!r}, not {org!r}")
    role = _subject(csr.subject, NameOID.UNSTRUCTURED_NAME)
    if role != "client":
        raise _fail(what, f"{name}.csr proposes role {role!r}, not client")
    pk_digest = public_key_sha256(key)
    if pk_digest != meta["public_key_sha256"]:
        raise _fail(what, f"{name}.csr's public key does not match the digest request.json records")
    return RequestInfo(
        project=project,
        name=name,
        org=org,
        request_id=request_id,
        created_at=created_at,
        connect_to=connect_to,
        csr_pem=csr_pem,
        csr_sha256=meta["csr_sha256"],
        public_key_sha256=pk_digest,
        key_bits=key.key_size,
        sha256=sha256_hex(data),
    )


# ------------------------------------------------------------------------------------------------- signed


def _load_cert(data: bytes, member: str, what: str) -> x509.Certificate:
    _single_pem(data, "CERTIFICATE", member, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise _fail(what, f"{member} does not parse as a certificate ({exc})") from None


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
    members = _read_members(data, what)
    if "signed.json" not in members:
        raise _fail(what, "has no signed.json (is this a request zip?)")
    meta = _json_object(members["signed.json"], "signed.json", what)
    extra = sorted(set(meta) - _SIGNED_FIELDS)
    missing = sorted(_SIGNED_FIELDS - set(meta))
    if extra or missing:
        raise _fail(what, f"signed.json is not NVFlare 2.9's approval ({'unexpected ' + ', '.join(extra) if extra else ''}{'; ' if extra and missing else ''}{'missing ' + ', '.join(missing) if missing else ''})")
    if meta["artifact_type"] != SIGNED_ARTIFACT or meta["schema_version"] != SCHEMA_VERSION:
        raise _fail(what, f"signed.json is a {meta['artifact_type']!r} v{meta['schema_version']!r}, not an NVFlare approval v{SCHEMA_VERSION}")
    project = _string(meta, "project", None, "signed.json", what)
    name = _string(meta, "name", None, "signed.json", what)
    org = _string(meta, "org", None, "signed.json", what)
    _check_names(project, name, org, what)
    if meta["kind"] != "site" or meta["cert_type"] != "client":
        raise _fail(what, f"holds a {meta['kind']!r}/{meta['cert_type']!r} certificate; only sites (client certificates) enroll this way")
    request_id = _string(meta, "request_id", _REQUEST_ID, "signed.json", what)
    approved_at = _string(meta, "approved_at", _TIMESTAMP, "signed.json", what)
    cert_name = f"{name}.crt"
    if meta["cert_file"] != cert_name or meta["rootca_file"] != "rootCA.pem":
        raise _fail(what, "signed.json names other files than the zip holds")
    _expect_members(members, {"signed.json", "signed.json.sig", "site.yaml", cert_name, "rootCA.pem"}, what)

    digests = meta["hashes"]
    if not isinstance(digests, dict) or set(digests) != _SIGNED_HASHES or not all(isinstance(v, str) and _SHA256_HEX.fullmatch(v) for v in digests.values()):
        raise _fail(what, f"signed.json: hashes must be exactly {', '.join(sorted(_SIGNED_HASHES))} (sha256 hex)")
    certificate = meta["certificate"]
    if not isinstance(certificate, dict) or set(certificate) != {"serial", "valid_until"} or not isinstance(certificate.get("serial"), str) or not _SERIAL.fullmatch(certificate["serial"]):
        raise _fail(what, "signed.json: certificate must hold serial (0x...) and valid_until")
    ca_info = meta["ca_info"]
    if not isinstance(ca_info, dict) or set(ca_info) != {"provision_version", "rootCA_fingerprint"}:
        raise _fail(what, "signed.json: ca_info must hold provision_version and rootCA_fingerprint")
    if not isinstance(ca_info["provision_version"], str) or not re.fullmatch(r"\d\d", ca_info["provision_version"]):
        raise _fail(what, "signed.json: ca_info.provision_version must be two digits")
    server = meta["server"]
    if not isinstance(server, dict) or set(server) != {"host", "fed_learn_port", "admin_port"}:
        raise _fail(what, "signed.json: server must hold host, fed_learn_port and admin_port")
    if not isinstance(server["host"], str) or not _is_host(server["host"]):
        raise _fail(what, f"signed.json: server.host {server['host']!r} is not a host name")
    for port_key in ("fed_learn_port", "admin_port"):
        port = server[port_key]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _fail(what, f"signed.json: server.{port_key} {port!r} is not a port")
    if meta["scheme"] not in ("grpc", "tcp", "http") or meta["default_connection_security"] not in ("clear", "tls", "mtls"):
        raise _fail(what, "signed.json: scheme or default_connection_security is not one NVFlare knows")

    _site_yaml(members["site.yaml"], project, name, org, what)
    rootca_pem, cert_pem = members["rootCA.pem"], members[cert_name]
    root = _load_cert(rootca_pem, "rootCA.pem", what)
    cert = _load_cert(cert_pem, cert_name, what)
    if not _is_ca(root) or root.subject != root.issuer or not chains_to(root, root):
        raise _fail(what, "rootCA.pem is not a self-signed CA certificate")
    if _subject(root.subject, NameOID.COMMON_NAME) != project:
        raise _fail(what, f"rootCA.pem is the root of project {_subject(root.subject, NameOID.COMMON_NAME)!r}, not {project!r}")
    if _is_ca(cert):
        raise _fail(what, f"{cert_name} is a CA certificate, not a site's")
    if not chains_to(cert, root):
        raise _fail(what, f"{cert_name} was not issued by the rootCA.pem in the zip (tampered or mixed up)")
    cn = _subject(cert.subject, NameOID.COMMON_NAME)
    if cn != name:
        raise _fail(what, f"{cert_name} is for CN {cn!r}, not for site {name!r}")
    if _subject(cert.subject, NameOID.ORGANIZATION_NAME) != org:
        raise _fail(what, f"{cert_name} is for org {_subject(cert.subject, NameOID.ORGANIZATION_NAME)!r}, not {org!r}")
    try:
        signature = base64.b64decode(members["signed.json.sig"].strip(), validate=True)
        root_key = root.public_key()
        if not isinstance(root_key, rsa.RSAPublicKey):
            raise InvalidSignature
        root_key.verify(signature, members["signed.json"], padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise _fail(what, "signed.json.sig is not rootCA's signature over signed.json (tampered)") from None

    pk_digest = public_key_sha256(cert.public_key())
    checks = (
        (sha256_hex(cert_pem), digests["certificate_sha256"], cert_name),
        (sha256_hex(rootca_pem), digests["rootca_sha256"], "rootCA.pem"),
        (sha256_hex(members["site.yaml"]), digests["site_yaml_sha256"], "site.yaml"),
        (pk_digest, digests["public_key_sha256"], f"the public key of {cert_name}"),
    )
    for actual, recorded, label in checks:
        if actual != recorded:
            raise _fail(what, f"{label} does not match the digest signed.json records")
    serial = hex(cert.serial_number)
    if certificate["serial"] != serial:
        raise _fail(what, f"signed.json records serial {certificate['serial']}, {cert_name} has {serial}")
    root_fp = fingerprint(root)
    if str(ca_info["rootCA_fingerprint"]).upper() != root_fp:
        raise _fail(what, "signed.json records another root CA fingerprint than rootCA.pem's")
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
        sha256=sha256_hex(data),
    )
