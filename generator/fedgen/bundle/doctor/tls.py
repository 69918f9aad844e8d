"""The TLS handshake with the kit's certificate, and what a failed one means."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

from .checks import is_ip
from .kit import Kit
from .lines import FAIL, OK, SKIP, WARN, Line
from .x509 import Cert, day, describe, parse_der

# HTTP/2 client connection preface and an empty SETTINGS frame: what a gRPC client sends first.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


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
        return ctx.wrap_socket(raw, server_hostname=None if is_ip(kit.host) else kit.host)
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
        return Line(
            FAIL,
            "tls",
            f"the certificate presented on {kit.host} port {kit.port} does not verify against rootCA.pem ({reason}) and could not be read",
            "check that nothing between this machine and the server inspects TLS; " + fresh,
        )
    if "expired" in reason or "not yet valid" in reason:
        return Line(
            FAIL,
            "tls",
            f"the server's certificate ({describe(seen.subject)}) is not valid now ({reason}; valid {day(seen.not_before)} to {day(seen.not_after)})",
            f"if this machine's clock is right, the operator must renew the server's certificate (fedgen rotate SPEC {kit.identity}) and redeploy",
        )
    if seen.cn == kit.identity:
        if seen.issuer == root.subject:
            what = f"the server's certificate (CN={kit.identity}) names the issuer of your rootCA.pem ({describe(root.subject)}) but was signed by another key"
        else:
            what = f"the server's certificate (CN={kit.identity}) is issued by {describe(seen.issuer)}, your kit trusts {describe(root.subject)}"
        return Line(FAIL, "tls", f"{what}: this bundle comes from another CA than the server's (another federation's state, or the root CA was rotated)", fresh)
    return Line(
        FAIL,
        "tls",
        f"something between this machine and the server presents a certificate for {describe(seen.subject)} issued by "
        f"{describe(seen.issuer)} instead of the server's (CN={kit.identity}, issued by {describe(root.subject)}): a TLS-inspecting proxy or firewall",
        f"exempt {kit.host} port {kit.port} from TLS inspection (NVFlare's mutual TLS cannot pass a proxy that terminates it)",
    )


def _tls_failure(kit: Kit, exc: ssl.SSLError) -> Line:
    reason = exc.reason or str(exc)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_EOF_WHILE_READING"):
        return Line(
            FAIL,
            "tls",
            f"what answers on {kit.host} port {kit.port} does not complete a TLS handshake ({reason}): it is not the NVFlare server",
            "check the port with the operator, and that no proxy or load balancer in between speaks plain TCP or terminates TLS",
        )
    return Line(
        FAIL,
        "tls",
        f"the TLS handshake on {kit.host} port {kit.port} failed ({reason}): the server refused this kit's certificate",
        f"the server trusts another root CA than the one that signed this kit: ask the operator for a fresh bundle (fedgen client-bundle {kit.name})",
    )


def _accepted(tls: ssl.SSLSocket, kit: Kit, timeout: float) -> Line:
    """Whether the server, having verified our certificate, talks to us: it answers the HTTP/2 preface."""
    mine = f"this kit's certificate (CN={kit.name})"
    try:
        tls.settimeout(timeout)
        tls.sendall(H2_PREFACE)
        answer = tls.recv(9)
    except ssl.SSLError as exc:
        return Line(
            FAIL,
            "tls",
            f"the server's certificate verified, but the server refused {mine}: {exc.reason or exc}",
            f"the server trusts another root CA, or this certificate was replaced: ask the operator for a fresh bundle (fedgen client-bundle {kit.name})",
        )
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
        out.lines.append(
            Line(
                FAIL,
                "tls",
                f"the kit's certificate and key do not load ({getattr(exc, 'strerror', None) or exc})",
                "run doctor.sh as the user that owns the kit; extract the bundle again and check it (sha256sum -c SHA256SUMS)",
            )
        )
        return out
    try:
        with _connect(verified, kit, address, timeout) as tls:
            der = tls.getpeercert(binary_form=True)
            cert = parse_der(der) if der else None
            if cert is None or cert.cn != kit.identity:
                out.lines.append(
                    Line(
                        FAIL,
                        "tls",
                        f"the certificate presented is for CN={cert.cn if cert else None}, the kit expects CN={kit.identity}",
                        f"{kit.host} reaches another NVFlare server of this CA: map {kit.host} to the right address",
                    )
                )
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
        out.lines.append(
            Line(
                FAIL,
                "tls",
                f"no TLS answer from {kit.host} port {kit.port} within {timeout:g} s",
                "something in between accepts TCP but does not pass TLS on: check proxies and firewalls that inspect traffic",
            )
        )
    except (OSError, ValueError) as exc:
        out.lines.append(
            Line(
                FAIL,
                "tls",
                f"the connection to {kit.host} port {kit.port} broke during the TLS handshake ({exc})",
                "a firewall or proxy in between drops TLS, or the server refused this kit's certificate: ask the operator",
            )
        )
    return out
