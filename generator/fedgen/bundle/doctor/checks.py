"""The checks before TLS: the installed NVFlare, the clock against a certificate, DNS, TCP."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import sys
from typing import Sequence

from .lines import FAIL, OK, WARN, Line
from .x509 import Cert, day

EXPIRY_WARNING_DAYS = 30


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def check_nvflare(want: str) -> Line:
    from importlib.metadata import PackageNotFoundError, version

    install = f"python3 -m pip install nvflare=={want}"
    try:
        have = version("nvflare")
    except PackageNotFoundError:
        return Line(
            WARN,
            "nvflare",
            f"not installed for {sys.executable}: fine for the docker path (the image brings NVFlare {want}); to run the client with run.sh: {install}",
        )
    if _major_minor(have) != _major_minor(want):
        return Line(
            FAIL,
            "nvflare",
            f"{have} is installed for {sys.executable}, the federation runs {want}",
            f"{install} (major.minor must match), or run the client with docker",
        )
    return Line(OK, "nvflare", f"{have} installed (the federation runs {want})")


def check_validity(label: str, cert: Cert, now: dt.datetime, renew: str) -> Line:
    """The local clock against one certificate's notBefore/notAfter."""
    if now < cert.not_before:
        return Line(
            FAIL,
            "clock",
            f"this machine's clock reads {day(now)}, before {label} becomes valid ({day(cert.not_before)})",
            "set the clock right (enable NTP, e.g. timedatectl set-ntp true)",
        )
    if now > cert.not_after:
        return Line(
            FAIL,
            "clock",
            f"{label} expired on {day(cert.not_after)} (this machine's clock reads {day(now)})",
            f"{renew}; if that date is wrong, set the clock right (NTP)",
        )
    left = (cert.not_after - now).days
    if left < EXPIRY_WARNING_DAYS:
        return Line(WARN, "clock", f"{label} expires in {left} days ({day(cert.not_after)}): {renew}")
    return Line(OK, "clock", f"{label} is valid until {day(cert.not_after)} ({left} days; clock reads {day(now)})")


def check_dns(host: str, port: int, server_address: str | None) -> tuple[Line, list[str]]:
    mapped = server_address if server_address and is_ip(server_address) else "<the server's address>"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return Line(
            FAIL,
            "dns",
            f"{host} does not resolve ({why})",
            f"add the line '{mapped} {host}' to /etc/hosts (docker: --add-host {host}:{mapped}; Kubernetes: hostAliases), "
            f"as README.md 'Reach the server' says; the kit must keep dialling {host}",
        ), []
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if server_address and is_ip(server_address) and server_address not in addresses:
        return Line(WARN, "dns", f"{host} resolves to {', '.join(addresses)}, not to {server_address}, the address this bundle was made for"), addresses
    return Line(OK, "dns", f"{host} resolves to {', '.join(addresses)}"), addresses


def is_ip(text: str) -> bool:
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
            problems.append(
                (
                    f"{address} port {port} ({label}) refused the connection: nothing listens there (a wrong port, or the server or its gateway is down)",
                    f"check with the operator that the server listens on port {port}; a bundle made before a port change must be sent again",
                )
            )
        except socket.timeout:
            problems.append(
                (
                    f"no answer from {address} port {port} ({label}) within {timeout:g} s: a firewall drops the traffic",
                    f"allow outbound TCP to {address} port {port} (the egress rule printed above)",
                )
            )
        except OSError as exc:
            problems.append((f"{address} port {port} ({label}): {exc.strerror or exc}", f"check this machine's route to {address} (proxy, VPN, firewall)"))
    text, fix = problems[0]
    if not needed:
        text += "; only the admin console needs this port" if label == "admin" else "; only sites need this port"
    return Line(status, "tcp", text, fix if needed else ""), None
