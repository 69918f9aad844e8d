#!/usr/bin/env python3
"""Connectivity doctor for one NVFlare startup kit: can this machine reach and authenticate the server?

fedgen ships this file verbatim as `doctor.py` in every bundle; the bundle's `doctor.sh` runs it with the
federation's facts (NVFlare version, ports, the server address the bundle was made for). It imports only the
standard library and reads only the kit, so it runs with any python3 >= 3.9 on the site's machine, before
NVFlare is installed. It must never import fedgen, nvflare or a third-party package.

One line per check, in this order: the installed NVFlare against the federation's version; the local clock
against the validity of the kit's certificates; DNS of the name the kit dials; TCP to the fl and admin ports;
a TLS handshake presenting the kit's certificate, verifying the server's against the kit's rootCA.pem and the
expected identity (NVFlare checks the chain and that the CN is the server's name, not the SAN), then whether
the server accepts the kit's certificate (it answers the HTTP/2 preface gRPC speaks); the clock against the
server's certificate once seen. Then the egress firewall rule the site needs, and one verdict line: `OK`, or
`FAIL: <cause> - <what to do>` for the first failure. Exit 0 (OK, warnings allowed), 1 (FAIL), 2 (bad usage).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
EXPIRY_WARNING_DAYS = 30
# HTTP/2 client connection preface and an empty SETTINGS frame: what a gRPC client sends first.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class Line:
    status: str
    check: str
    text: str
    fix: str = ""  # for FAIL: what to do

    def render(self) -> str:
        return f"{self.status:<4}  {self.check:<7} {self.text}"


class KitError(Exception):
    """The kit cannot be read: a missing or malformed file."""


# ------------------------------------------------------------------------------------------------ the kit


@dataclass(frozen=True)
class Kit:
    folder: Path
    kind: str  # site | admin
    name: str
    host: str  # the name the kit dials
    port: int
    identity: str  # the CN the server's certificate must carry
    security: str  # mtls | tls | clear
    cert: Path
    key: Path
    root: Path


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise KitError(f"cannot read {path.name}: {exc.strerror}") from None
    except ValueError as exc:
        raise KitError(f"{path.name} is not JSON ({exc})") from None


def load_kit(folder: Path) -> Kit:
    """The server the kit dials and the files it authenticates with, from fed_client.json or fed_admin.json."""
    startup = folder / "startup"
    try:
        if (startup / "fed_client.json").is_file():
            doc = _json(startup / "fed_client.json")
            server, client = doc["servers"][0], doc["client"]
            host, _, port = str(server["service"]["target"]).rpartition(":")
            return Kit(folder, "site", str(client.get("fqsn", folder.name)), host, int(port), str(server["identity"]),
                       str(client.get("connection_security", "mtls")), startup / client["ssl_cert"],
                       startup / client["ssl_private_key"], startup / client["ssl_root_cert"])
        if (startup / "fed_admin.json").is_file():
            admin = _json(startup / "fed_admin.json")["admin"]
            return Kit(folder, "admin", str(admin["username"]), str(admin["host"]), int(admin["port"]),
                       str(admin["server_identity"]), str(admin.get("connection_security", "mtls")),
                       startup / admin["client_cert"], startup / admin["client_key"], startup / admin["ca_cert"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise KitError(f"the kit's server settings are incomplete ({type(exc).__name__}: {exc})") from None
    raise KitError(f"{startup} holds neither fed_client.json nor fed_admin.json")


# ----------------------------------------------------------------------------------- certificates (DER)

_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST"}
Name = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Cert:
    subject: Name
    issuer: Name
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str

    @property
    def cn(self) -> str | None:
        return next((v for k, v in self.subject if k == "CN"), None)


def describe(name: Name) -> str:
    return ", ".join(f"{k}={v}" for k, v in name) or "(empty name)"


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad length")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        element = _tlv(data, start)
        out.append(element)
        start = element[2]
    return out


def _oid(raw: bytes) -> str:
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)] if raw else []
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _name(data: bytes, element: tuple[int, int, int]) -> Name:
    out = []
    for _, set_start, set_end in _children(data, element[1], element[2]):
        for _, start, end in _children(data, set_start, set_end):
            (_, os_, oe), (vtag, vs, ve) = _children(data, start, end)[:2]
            oid = _oid(data[os_:oe])
            value = data[vs:ve].decode("utf-16-be" if vtag == 0x1E else "utf-8", errors="replace")
            out.append((_NAMES.get(oid, oid), value))
    return tuple(out)


def _time(data: bytes, element: tuple[int, int, int]) -> dt.datetime:
    tag, start, end = element
    text = data[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime, RFC 5280: YY >= 50 is 19YY
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)


def parse_der(der: bytes) -> Cert:
    """Subject, issuer, validity and SHA-256 of an X.509 certificate (ValueError when it is not one)."""
    try:
        _, start, end = _tlv(der, 0)
        _, tbs_start, tbs_end = _children(der, start, end)[0]
        fields = _children(der, tbs_start, tbs_end)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _serial, _algorithm, issuer, validity, subject = fields[:5]
        not_before, not_after = _children(der, validity[1], validity[2])[:2]
        return Cert(_name(der, subject), _name(der, issuer), _time(der, not_before), _time(der, not_after), hashlib.sha256(der).hexdigest())
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an X.509 certificate ({exc})") from None


def parse_pem(text: str) -> Cert:
    """The first certificate of a PEM file."""
    match = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", text, re.DOTALL)
    if match is None:
        raise ValueError("no PEM certificate")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the PEM certificate is not base64") from None
    return parse_der(der)


# ---------------------------------------------------------------------------------------------- checks


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_nvflare(want: str) -> Line:
    from importlib.metadata import PackageNotFoundError, version

    install = f"python3 -m pip install nvflare=={want}"
    try:
        have = version("nvflare")
    except PackageNotFoundError:
        return Line(WARN, "nvflare", f"not installed for {sys.executable}: fine for the docker path (the image brings NVFlare {want}); "
                    f"to run the client with run.sh: {install}")
    if _major_minor(have) != _major_minor(want):
        return Line(FAIL, "nvflare", f"{have} is installed for {sys.executable}, the federation runs {want}",
                    f"{install} (major.minor must match), or run the client with docker")
    return Line(OK, "nvflare", f"{have} installed (the federation runs {want})")


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def check_validity(label: str, cert: Cert, now: dt.datetime, renew: str) -> Line:
    """The local clock against one certificate's notBefore/notAfter."""
    if now < cert.not_before:
        return Line(FAIL, "clock", f"this machine's clock reads {_day(now)}, before {label} becomes valid ({_day(cert.not_before)})",
                    "set the clock right (enable NTP, e.g. timedatectl set-ntp true)")
    if now > cert.not_after:
        return Line(FAIL, "clock", f"{label} expired on {_day(cert.not_after)} (this machine's clock reads {_day(now)})",
                    f"{renew}; if that date is wrong, set the clock right (NTP)")
    left = (cert.not_after - now).days
    if left < EXPIRY_WARNING_DAYS:
        return Line(WARN, "clock", f"{label} expires in {left} days ({_day(cert.not_after)}): {renew}")
    return Line(OK, "clock", f"{label} is valid until {_day(cert.not_after)} ({left} days; clock reads {_day(now)})")


def check_dns(host: str, port: int, server_address: str | None) -> tuple[Line, list[str]]:
    mapped = server_address if server_address and _is_ip(server_address) else "<the server's address>"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return Line(FAIL, "dns", f"{host} does not resolve ({why})",
                    f"add the line '{mapped} {host}' to /etc/hosts (docker: --add-host {host}:{mapped}; Kubernetes: hostAliases), "
                    f"as README.md 'Reach the server' says; the kit must keep dialling {host}"), []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if server_address and _is_ip(server_address) and server_address not in addresses:
        return Line(WARN, "dns", f"{host} resolves to {', '.join(addresses)}, not to {server_address}, the address this bundle was made for"), addresses
    return Line(OK, "dns", f"{host} resolves to {', '.join(addresses)}"), addresses


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_tcp(addresses: Sequence[str], port: int, label: str, needed: bool, timeout: float) -> tuple[Line, str | None]:
    """(line, the address that accepted) for the first address that accepts a connection on port."""
    status, problems = (FAIL if needed else WARN), []
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return Line(OK, "tcp", f"{address} port {port} ({label}) accepts connections"), address
        except ConnectionRefusedError:
            problems.append((f"{address} port {port} ({label}) refused the connection: nothing listens there (a wrong port, or the server or its gateway is down)",
                             f"check with the operator that the server listens on port {port}; a bundle made before a port change must be sent again"))
        except socket.timeout:
            problems.append((f"no answer from {address} port {port} ({label}) within {timeout:g} s: a firewall drops the traffic",
                             f"allow outbound TCP to {address} port {port} (the egress rule printed above)"))
        except OSError as exc:
            problems.append((f"{address} port {port} ({label}): {exc.strerror or exc}",
                             f"check this machine's route to {address} (proxy, VPN, firewall)"))
    text, fix = problems[0]
    if not needed:
        text += "; only the admin console needs this port" if label == "admin" else "; only sites need this port"
    return Line(status, "tcp", text, fix if needed else ""), None


@dataclass
class Handshake:
    lines: list[Line] = field(default_factory=list)
    server_cert: Cert | None = None  # the server's certificate (CN = the identity), verified or not, once seen


def _context(kit: Kit, verify: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # NVFlare verifies the chain and the CN, never the dialled name
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    if verify:
        ctx.load_verify_locations(cafile=str(kit.root))
    if kit.security == "mtls":
        ctx.load_cert_chain(str(kit.cert), str(kit.key))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _connect(ctx: ssl.SSLContext, kit: Kit, address: str, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection((address, kit.port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=None if _is_ip(kit.host) else kit.host)
    except BaseException:
        raw.close()
        raise


def _presented(kit: Kit, address: str, timeout: float) -> Cert | None:
    """The certificate whatever answers presents, read without verifying it (None when it cannot be read)."""
    try:
        with _connect(_context(kit, verify=False), kit, address, timeout) as tls:
            der = tls.getpeercert(binary_form=True)
        return parse_der(der) if der else None
    except (OSError, ValueError):
        return None


def _untrusted(kit: Kit, root: Cert, seen: Cert | None, reason: str) -> Line:
    fresh = f"ask the operator for a fresh bundle from the state the server runs (fedgen client-bundle {kit.name})"
    if seen is None:
        return Line(FAIL, "tls", f"the certificate presented on {kit.host} port {kit.port} does not verify against rootCA.pem ({reason}) and could not be read",
                    "check that nothing between this machine and the server inspects TLS; " + fresh)
    if "expired" in reason or "not yet valid" in reason:
        return Line(FAIL, "tls", f"the server's certificate ({describe(seen.subject)}) is not valid now ({reason}; valid {_day(seen.not_before)} to {_day(seen.not_after)})",
                    f"if this machine's clock is right, the operator must renew the server's certificate (fedgen rotate SPEC {kit.identity}) and redeploy")
    if seen.cn == kit.identity:
        if seen.issuer == root.subject:
            what = f"the server's certificate (CN={kit.identity}) names the issuer of your rootCA.pem ({describe(root.subject)}) but was signed by another key"
        else:
            what = f"the server's certificate (CN={kit.identity}) is issued by {describe(seen.issuer)}, your kit trusts {describe(root.subject)}"
        return Line(FAIL, "tls", f"{what}: this bundle comes from another CA than the server's (another federation's state, or the root CA was rotated)", fresh)
    return Line(FAIL, "tls", f"something between this machine and the server presents a certificate for {describe(seen.subject)} issued by "
                f"{describe(seen.issuer)} instead of the server's (CN={kit.identity}, issued by {describe(root.subject)}): a TLS-inspecting proxy or firewall",
                f"exempt {kit.host} port {kit.port} from TLS inspection (NVFlare's mutual TLS cannot pass a proxy that terminates it)")


def _tls_failure(kit: Kit, exc: ssl.SSLError) -> Line:
    reason = exc.reason or str(exc)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_EOF_WHILE_READING"):
        return Line(FAIL, "tls", f"what answers on {kit.host} port {kit.port} does not complete a TLS handshake ({reason}): it is not the NVFlare server",
                    "check the port with the operator, and that no proxy or load balancer in between speaks plain TCP or terminates TLS")
    return Line(FAIL, "tls", f"the TLS handshake on {kit.host} port {kit.port} failed ({reason}): the server refused this kit's certificate",
                f"the server trusts another root CA than the one that signed this kit: ask the operator for a fresh bundle (fedgen client-bundle {kit.name})")


def _accepted(tls: ssl.SSLSocket, kit: Kit, timeout: float) -> Line:
    """Whether the server, having verified our certificate, talks to us: it answers the HTTP/2 preface."""
    mine = f"this kit's certificate (CN={kit.name})"
    try:
        tls.settimeout(timeout)
        tls.sendall(H2_PREFACE)
        answer = tls.recv(9)
    except ssl.SSLError as exc:
        return Line(FAIL, "tls", f"the server's certificate verified, but the server refused {mine}: {exc.reason or exc}",
                    f"the server trusts another root CA, or this certificate was replaced: ask the operator for a fresh bundle (fedgen client-bundle {kit.name})")
    except (socket.timeout, OSError) as exc:
        return Line(WARN, "tls", f"the server's certificate verified, but the server did not answer after the handshake ({exc or 'timeout'})")
    if not answer:
        return Line(WARN, "tls", "the server's certificate verified, but the server closed the connection after the handshake")
    return Line(OK, "tls", f"server CN={kit.identity} verified against rootCA.pem; the server accepted {mine}")


def check_tls(kit: Kit, root: Cert, address: str, timeout: float) -> Handshake:
    out = Handshake()
    if kit.security == "clear":
        out.lines.append(Line(SKIP, "tls", "the kit connects without TLS (connection_security: clear)"))
        return out
    try:
        verified = _context(kit, verify=True)
    except (OSError, ssl.SSLError) as exc:
        out.lines.append(Line(FAIL, "tls", f"the kit's certificate and key do not load ({getattr(exc, 'strerror', None) or exc})",
                              "run doctor.sh as the user that owns the kit; extract the bundle again and check it (sha256sum -c SHA256SUMS)"))
        return out
    try:
        with _connect(verified, kit, address, timeout) as tls:
            der = tls.getpeercert(binary_form=True)
            cert = parse_der(der) if der else None
            if cert is None or cert.cn != kit.identity:
                out.lines.append(Line(FAIL, "tls", f"the certificate presented is for CN={cert.cn if cert else None}, the kit expects CN={kit.identity}",
                                      f"{kit.host} reaches another NVFlare server of this CA: map {kit.host} to the right address"))
            else:
                out.server_cert = cert
                out.lines.append(_accepted(tls, kit, timeout))
    except ssl.SSLCertVerificationError as exc:
        seen = _presented(kit, address, timeout)
        out.server_cert = seen if seen is not None and seen.cn == kit.identity else None
        out.lines.append(_untrusted(kit, root, seen, str(exc.verify_message or exc.reason)))
    except ssl.SSLError as exc:
        out.lines.append(_tls_failure(kit, exc))
    except socket.timeout:
        out.lines.append(Line(FAIL, "tls", f"no TLS answer from {kit.host} port {kit.port} within {timeout:g} s",
                              "something in between accepts TCP but does not pass TLS on: check proxies and firewalls that inspect traffic"))
    except (OSError, ValueError) as exc:
        out.lines.append(Line(FAIL, "tls", f"the connection to {kit.host} port {kit.port} broke during the TLS handshake ({exc})",
                              "a firewall or proxy in between drops TLS, or the server refused this kit's certificate: ask the operator"))
    return out


# -------------------------------------------------------------------------------------------------- run


def egress_rule(kit: Kit, addresses: Sequence[str]) -> str:
    where = ", ".join(addresses) if addresses else "<the server's address>"
    return f"egress rule: allow outbound TCP from this machine to {where} ({kit.host}) port {kit.port}; no inbound port is needed"


def verdict(lines: Sequence[Line]) -> str:
    failed = next((line for line in lines if line.status == FAIL), None)
    return "OK" if failed is None else f"FAIL: {failed.check}: {failed.text} - {failed.fix}"


def diagnose(kit: Kit, *, want: str, ports: dict[str, int], server_address: str | None, timeout: float,
             now: dt.datetime, emit: Callable[[str], None] = print) -> int:
    lines: list[Line] = []

    def add(line: Line) -> None:
        lines.append(line)
        emit(line.render())

    add(check_nvflare(want))
    renew = f"ask the operator for a new bundle (fedgen rotate SPEC {kit.name}, then fedgen client-bundle {kit.name})"
    certs: dict[str, Cert] = {}
    for label, path, hint in (("this kit's certificate", kit.cert, renew),
                              ("the root CA (rootCA.pem)", kit.root, "the operator must renew the root CA (fedgen rotate SPEC --root-ca) and send everyone a new bundle")):
        try:
            certs[label] = parse_pem(path.read_text())
        except (OSError, ValueError) as exc:
            add(Line(FAIL, "kit", f"cannot read {path.name}: {getattr(exc, 'strerror', None) or exc}",
                     "run doctor.sh as the user that owns the kit; extract the bundle again and check it (sha256sum -c SHA256SUMS)"))
            continue
        add(check_validity(label, certs[label], now, hint))
    dns, addresses = check_dns(kit.host, kit.port, server_address)
    add(dns)
    dialled = "fl" if kit.kind == "site" else "admin"
    accepted = None
    for label in ("fl", "admin"):
        port = kit.port if label == dialled else ports[label]
        if not addresses:
            add(Line(SKIP, "tcp", f"port {port} ({label}) not tried: {kit.host} does not resolve"))
            continue
        line, address = check_tcp(addresses, port, label, label == dialled, timeout)
        add(line)
        if label == dialled:
            accepted = address
    root = certs.get("the root CA (rootCA.pem)")
    if accepted is None or root is None:
        add(Line(SKIP, "tls", "not tried: no TCP connection to the server" if root is not None else "not tried: rootCA.pem cannot be read"))
    else:
        handshake = check_tls(kit, root, accepted, timeout)
        for line in handshake.lines:
            add(line)
        if handshake.server_cert is not None:
            add(check_validity(f"the server's certificate ({describe(handshake.server_cert.subject)})", handshake.server_cert, now,
                               f"the operator must renew the server's certificate (fedgen rotate SPEC {kit.identity}) and redeploy"))
    emit(egress_rule(kit, addresses or ([server_address] if server_address else [])))
    emit(verdict(lines))
    return 1 if any(line.status == FAIL for line in lines) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that this NVFlare startup kit can reach and authenticate its server.")
    parser.add_argument("--kit", type=Path, default=Path(os.path.dirname(os.path.realpath(__file__))), help="the kit folder (holding startup/)")
    parser.add_argument("--nvflare", required=True, help="the NVFlare version the federation runs")
    parser.add_argument("--fl-port", type=int, required=True, help="the server's fl port (sites dial it)")
    parser.add_argument("--admin-port", type=int, required=True, help="the server's admin port (the admin console dials it)")
    parser.add_argument("--server-address", help="the server address the bundle was made for, when known")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each connection (default 5)")
    args = parser.parse_args(argv)
    try:
        kit = load_kit(args.kit)
    except KitError as exc:
        line = Line(FAIL, "kit", str(exc), "run doctor.sh from the extracted bundle; extract it again and check it (sha256sum -c SHA256SUMS)")
        print(line.render())
        print(verdict([line]))
        return 1
    now = dt.datetime.now(dt.timezone.utc)
    return diagnose(kit, want=args.nvflare, ports={"fl": args.fl_port, "admin": args.admin_port}, server_address=args.server_address,
                    timeout=args.timeout, now=now, emit=lambda text: print(text, flush=True))


if __name__ == "__main__":
    sys.exit(main())
