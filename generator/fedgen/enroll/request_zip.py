"""The request zip a site sends (`nvflare cert request`, NVFlare 2.9): exactly request.json, site.yaml and
<site>.csr. Bytes in, a typed summary out, InputError otherwise; checks against a spec are in policy.py."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fedgen.enroll.fingerprints import public_key_sha256, sha256_hex
from fedgen.enroll.zips import (
    REQUEST_ID,
    SHA256_HEX,
    TIMESTAMP,
    expect_members,
    fail,
    read_header,
    read_members,
    single_pem,
    site_yaml,
    string_field,
    subject_attribute,
)

MIN_RSA_BITS = 2048
REQUEST_ARTIFACT = "nvflare.cert.request"
# The fields NVFlare 2.9 writes; anything more is refused (a place to smuggle data into a committed file).
_REQUEST_FIELDS = frozenset(
    {
        "artifact_type",
        "schema_version",
        "request_id",
        "created_at",
        "project",
        "name",
        "org",
        "kind",
        "cert_type",
        "cert_role",
        "csr_sha256",
        "public_key_sha256",
        "site_yaml_sha256",
    }
)


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


def inspect_request_zip(data: bytes, *, what: str = "request") -> RequestInfo:
    """Check a request zip made by `nvflare cert request` for one client; InputError names the first problem.

    Checks: size caps; a flat zip of exactly request.json, site.yaml and <name>.csr (no folders, links,
    paths, encryption, comment); no private key anywhere; request.json has exactly NVFlare 2.9's fields, kind
    site and type client; NVFlare's name rules for project, site and org; site.yaml names the same project and
    participant; the recorded digests of site.yaml, the CSR and its public key match; the CSR parses, its
    signature is valid, its CN is the site, its O the org, its role client, and its key is RSA of at least
    2048 bits.
    """
    members = read_members(data, what)
    meta, project, name, org = read_header(
        members,
        "request.json",
        fields=_REQUEST_FIELDS,
        optional=frozenset({"cert_role"}),
        artifact=REQUEST_ARTIFACT,
        called=("request", "certificate request"),
        elsewhere="is this a signed zip? approve takes the .request.zip",
        what=what,
    )
    if meta["kind"] != "site" or meta["cert_type"] != "client" or meta.get("cert_role") is not None:
        raise fail(what, f"requests a {meta['kind']!r}/{meta['cert_type']!r} certificate; only sites (client certificates) enroll this way")
    request_id = string_field(meta, "request_id", REQUEST_ID, "request.json", what)
    created_at = string_field(meta, "created_at", TIMESTAMP, "request.json", what)
    for digest in ("csr_sha256", "public_key_sha256", "site_yaml_sha256"):
        string_field(meta, digest, SHA256_HEX, "request.json", what)
    expect_members(members, {"request.json", "site.yaml", f"{name}.csr"}, what)

    connect_to = site_yaml(members["site.yaml"], project, name, org, what)
    if sha256_hex(members["site.yaml"]) != meta["site_yaml_sha256"]:
        raise fail(what, "site.yaml does not match the digest request.json records (edited after the request was made?)")

    csr_pem = single_pem(members[f"{name}.csr"], "CERTIFICATE REQUEST", f"{name}.csr", what)
    if sha256_hex(csr_pem) != meta["csr_sha256"]:
        raise fail(what, f"{name}.csr does not match the digest request.json records (edited after the request was made?)")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise fail(what, f"{name}.csr does not parse as a certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise fail(what, f"{name}.csr has an invalid signature (tampered)")
    key = csr.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise fail(what, f"{name}.csr carries a {type(key).__name__} key; NVFlare sites use RSA")
    if key.key_size < MIN_RSA_BITS:
        raise fail(what, f"{name}.csr carries an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    cn = subject_attribute(csr.subject, NameOID.COMMON_NAME)
    if cn != name:
        raise fail(what, f"{name}.csr is for CN {cn!r}, not for site {name!r}")
    csr_org = subject_attribute(csr.subject, NameOID.ORGANIZATION_NAME)
    if csr_org != org:
        raise fail(what, f"{name}.csr is for org {csr_org!r}, not {org!r}")
    role = subject_attribute(csr.subject, NameOID.UNSTRUCTURED_NAME)
    if role != "client":
        raise fail(what, f"{name}.csr proposes role {role!r}, not client")
    pk_digest = public_key_sha256(key)
    if pk_digest != meta["public_key_sha256"]:
        raise fail(what, f"{name}.csr's public key does not match the digest request.json records")
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
