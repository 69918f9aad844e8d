"""What the request and the signed zip have in common: reading a small, flat zip safely (no key inside, no
folder, link or path, size caps), its JSON and YAML members, NVFlare's name rules, and NVFlare's site.yaml.

Nothing here reads files, the spec or the state: request_zip.py and signed_zip.py check bytes and raise
InputError naming the first problem (PrivateKeyFound when a key is inside).
"""

from __future__ import annotations

import io
import ipaddress
import re
import stat
import zipfile
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from fedgen.errors import InputError
from fedgen.untrusted import check_yaml_depth, loads_json

# Size caps. A 2.9 request zip is about 1.5 KB and a signed zip about 4 KB.
MAX_ZIP_BYTES = 64 * 1024
MAX_MEMBER_BYTES = 32 * 1024
MAX_MEMBERS = 8

SCHEMA_VERSION = "1"

# NVFlare's name rules (nvflare/apis/utils/format_check.py and the distributed-provisioning CLI): a client name
# is letters, digits, '-' and '_' (and a certificate name starts with a letter or digit, at most 64); an org
# is letters, digits and '_'; a project starts with a letter or digit and may hold '.', '-' and '_'.
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ORG_NAME = re.compile(r"^[A-Za-z0-9_]+$")
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REQUEST_ID = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
# Every PEM private key label ends in "PRIVATE KEY" (PKCS#8, encrypted PKCS#8, RSA, EC, DSA, OpenSSH).
_KEY_MARKER = b"PRIVATE KEY"

# The fields of NVFlare 2.9's site.yaml; anything more is refused (a place to smuggle data into a committed file).
_SITE_TOP = frozenset({"name", "participants", "description"})
_SITE_PARTICIPANT = frozenset({"name", "type", "org", "connect_to"})
_CONNECT_TO = frozenset({"host", "port"})


class PrivateKeyFound(InputError):
    """The zip carries private key material (validate reports it as a secrets finding, not a shape one)."""


def holds_private_key(data: bytes) -> bool:
    """True when the bytes carry a PEM private key marker (any kind)."""
    return _KEY_MARKER in data


def fail(what: str, message: str) -> InputError:
    return InputError(f"{what}: {message}")


def read_members(data: bytes, what: str) -> dict[str, bytes]:
    """Every member of a small, flat zip, after the safety checks; refuses any private key inside."""
    if len(data) > MAX_ZIP_BYTES:
        raise fail(what, f"{len(data)} bytes, more than the {MAX_ZIP_BYTES} an enrollment zip may have")
    if not data.startswith(b"PK\x03\x04"):
        raise fail(what, "not a zip file")
    if holds_private_key(data):
        raise PrivateKeyFound(f"{what}: holds a private key; never send or commit a key (it stays in the site's request folder)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise fail(what, f"not a readable zip ({exc})") from None
    with zf:
        if zf.comment:
            raise fail(what, "carries a zip comment; NVFlare writes none")
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise fail(what, f"{len(infos)} members, more than {MAX_MEMBERS}")
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
                raise fail(what, f"unsafe member {name!r} (only plain files at the top of the zip are allowed: no folders, links or paths)")
            if name in out:
                raise fail(what, f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise fail(what, f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise fail(what, f"member {name!r} uses an unsupported compression method")
            if info.file_size > MAX_MEMBER_BYTES:
                raise fail(what, f"member {name!r} is {info.file_size} bytes, more than {MAX_MEMBER_BYTES}")
            try:
                with zf.open(info) as fh:
                    content = fh.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
                raise fail(what, f"member {name!r} cannot be read ({exc})") from None
            if len(content) > MAX_MEMBER_BYTES or len(content) != info.file_size:
                raise fail(what, f"member {name!r} is larger than its header says")
            if holds_private_key(content) or name.lower().endswith((".key", ".p12", ".pfx", ".jks")):
                raise PrivateKeyFound(f"{what}: member {name!r} holds a private key; never send or commit a key (it stays in the site's request folder)")
            out[name] = content
    return out


def expect_members(members: Mapping[str, bytes], expected: set[str], what: str) -> None:
    if set(members) != expected:
        extra = sorted(set(members) - expected)
        missing = sorted(expected - set(members))
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise fail(what, f"must hold exactly {', '.join(sorted(expected))} ({'; '.join(parts)})")


def json_object(data: bytes, member: str, what: str) -> dict[str, Any]:
    try:
        value = loads_json(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(what, f"{member} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise fail(what, f"{member} is not a JSON object")
    return value


def yaml_mapping(data: bytes, member: str, what: str) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = data.decode("utf-8")
        check_yaml_depth(text)
        value = YAML(typ="safe", pure=True).load(text)
    except (UnicodeDecodeError, YAMLError, ValueError) as exc:
        raise fail(what, f"{member} is not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise fail(what, f"{member} is not a YAML mapping")
    return value


def string_field(doc: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None, member: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
        raise fail(what, f"{member}: {key} {value!r} is missing or malformed")
    return value


def check_names(project: str, name: str, org: str, what: str) -> None:
    if not PROJECT_NAME.fullmatch(project):
        raise fail(what, f"project {project!r} breaks NVFlare's project name rule ({PROJECT_NAME.pattern})")
    if not SITE_NAME.fullmatch(name):
        raise fail(what, f"site name {name!r} breaks NVFlare's client name rule ({SITE_NAME.pattern})")
    if not ORG_NAME.fullmatch(org):
        raise fail(what, f"org {org!r} breaks NVFlare's org rule (letters, digits and '_' only)")


def read_header(
    members: Mapping[str, bytes],
    member: str,
    *,
    fields: frozenset[str],
    optional: frozenset[str] = frozenset(),
    artifact: str,
    called: tuple[str, str],
    elsewhere: str,
    what: str,
) -> tuple[dict[str, Any], str, str, str]:
    """(the document, project, site, org) of `member`, the JSON document an NVFlare 2.9 enrollment zip opens
    with (request.json, signed.json): exactly NVFlare's `fields` (those in `optional` may be absent), its
    artifact type and schema version, and names that keep NVFlare's rules. `called` names the document in
    messages (short, in full); `elsewhere` says what a zip without it probably is."""
    if member not in members:
        raise fail(what, f"has no {member} ({elsewhere})")
    meta = json_object(members[member], member, what)
    extra = sorted(set(meta) - fields)
    missing = sorted(fields - optional - set(meta))
    if extra or missing:
        raise fail(
            what,
            f"{member} is not NVFlare 2.9's {called[0]} ({'unexpected ' + ', '.join(extra) if extra else ''}{'; ' if extra and missing else ''}{'missing ' + ', '.join(missing) if missing else ''})",
        )
    if meta["artifact_type"] != artifact or meta["schema_version"] != SCHEMA_VERSION:
        raise fail(what, f"{member} is a {meta['artifact_type']!r} v{meta['schema_version']!r}, not an NVFlare {called[1]} v{SCHEMA_VERSION}")
    project = string_field(meta, "project", None, member, what)
    name = string_field(meta, "name", None, member, what)
    org = string_field(meta, "org", None, member, what)
    check_names(project, name, org, what)
    return meta, project, name, org


def single_pem(data: bytes, label: str, member: str, what: str) -> bytes:
    """The member must be exactly one PEM block of `label` (trailing newline allowed), nothing else."""
    text = data.strip()
    begin, end = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    if not (text.startswith(begin) and text.endswith(end)) or text.count(b"-----BEGIN") != 1:
        raise fail(what, f"{member} must hold exactly one PEM {label} and nothing else")
    return data


def site_yaml(data: bytes, project: str, name: str, org: str, what: str) -> str | None:
    """NVFlare's site.yaml for one client: project name and one participant; returns connect_to.host."""
    doc = yaml_mapping(data, "site.yaml", what)
    extra = sorted(set(map(str, doc)) - _SITE_TOP)
    if extra:
        raise fail(what, f"site.yaml has unexpected fields {', '.join(extra)} (make the request from the participant.yaml of `fedgen enroll kit`)")
    description = doc.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        raise fail(what, "site.yaml: description must be a short string")
    if doc.get("name") != project:
        raise fail(what, f"site.yaml names project {doc.get('name')!r}, request.json {project!r}")
    participants = doc.get("participants")
    if not isinstance(participants, list) or len(participants) != 1 or not isinstance(participants[0], dict):
        raise fail(what, "site.yaml must list exactly one participant")
    p = participants[0]
    extra = sorted(set(map(str, p)) - _SITE_PARTICIPANT)
    if extra:
        raise fail(what, f"site.yaml: the participant has unexpected fields {', '.join(extra)}")
    if p.get("name") != name or p.get("org") != org or p.get("type") != "client":
        raise fail(
            what,
            f"site.yaml's participant ({p.get('name')!r}, org {p.get('org')!r}, type {p.get('type')!r}) does not match request ({name!r}, org {org!r}, client)",
        )
    connect_to = p.get("connect_to")
    if connect_to is None:
        return None
    if not isinstance(connect_to, dict) or set(map(str, connect_to)) - _CONNECT_TO:
        raise fail(what, "site.yaml: connect_to may hold only host and port")
    host = connect_to.get("host")
    if not isinstance(host, str) or not is_host(host):
        raise fail(what, f"site.yaml: connect_to.host {host!r} is not a host name or IP address")
    port = connect_to.get("port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
        raise fail(what, f"site.yaml: connect_to.port {port!r} is not a port")
    return host


def is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(value))


def subject_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else None
