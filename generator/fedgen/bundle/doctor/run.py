"""All checks in order, the egress rule, the verdict, and the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .checks import check_dns, check_nvflare, check_tcp, check_validity
from .kit import Kit, KitError, load_kit
from .lines import FAIL, SKIP, Line, verdict
from .tls import check_tls
from .x509 import Cert, describe, parse_pem


def egress_rule(kit: Kit, addresses: Sequence[str]) -> str:
    where = ", ".join(addresses) if addresses else "<the server's address>"
    return f"egress rule: allow outbound TCP from this machine to {where} ({kit.host}) port {kit.port}; no inbound port is needed"


def diagnose(
    kit: Kit, *, want: str, ports: dict[str, int], server_address: str | None, timeout: float, now: dt.datetime, emit: Callable[[str], None] = print
) -> int:
    lines: list[Line] = []

    def add(line: Line) -> None:
        lines.append(line)
        emit(line.render())

    add(check_nvflare(want))
    renew = f"ask the operator for a new bundle (fedgen rotate SPEC {kit.name}, then fedgen client-bundle {kit.name})"
    certs: dict[str, Cert] = {}
    for label, path, hint in (
        ("this kit's certificate", kit.cert, renew),
        ("the root CA (rootCA.pem)", kit.root, "the operator must renew the root CA (fedgen rotate SPEC --root-ca) and send everyone a new bundle"),
    ):
        try:
            certs[label] = parse_pem(path.read_text())
        except (OSError, ValueError) as exc:
            add(
                Line(
                    FAIL,
                    "kit",
                    f"cannot read {path.name}: {getattr(exc, 'strerror', None) or exc}",
                    "run doctor.sh as the user that owns the kit; extract the bundle again and check it (sha256sum -c SHA256SUMS)",
                )
            )
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
            add(
                check_validity(
                    f"the server's certificate ({describe(handshake.server_cert.subject)})",
                    handshake.server_cert,
                    now,
                    f"the operator must renew the server's certificate (fedgen rotate SPEC {kit.identity}) and redeploy",
                )
            )
    emit(egress_rule(kit, addresses or ([server_address] if server_address else [])))
    emit(verdict(lines))
    return 1 if any(line.status == FAIL for line in lines) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that this NVFlare startup kit can reach and authenticate its server.")
    parser.add_argument("--kit", type=Path, default=Path(os.path.realpath(__file__)).parent.parent, help="the kit folder (holding startup/ and this doctor/)")
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
    return diagnose(
        kit,
        want=args.nvflare,
        ports={"fl": args.fl_port, "admin": args.admin_port},
        server_address=args.server_address,
        timeout=args.timeout,
        now=now,
        emit=lambda text: print(text, flush=True),
    )


if __name__ == "__main__":
    sys.exit(main())
