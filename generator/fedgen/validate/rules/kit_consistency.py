"""FG6xx for the NVFlare kits: the server certificate names what clients dial and chains to the root CA shipped
with it, no certificate has expired, fed_server.json parses, and each client's fed_client.json dials a name the
server's certificate carries, under the same root CA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fedgen.validate.finding import ERROR
from fedgen.validate.model import Model
from fedgen.validate.nvflare import (
    FED_CLIENT,
    FED_SERVER,
    ROOT_CA,
    SERVER_CERT,
    find_clients,
    find_servers,
    project_of,
)
from fedgen.validate.rule import Hit, Rule, on
from fedgen.validate.rules.consistency import servers
from fedgen.validate.yamlsource import pointer

if TYPE_CHECKING:
    from cryptography import x509


def _load_cert(pem: str) -> x509.Certificate | None:
    from cryptography import x509  # imported when a kit has certificates, not with the rules

    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


def _cn(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def certificate_cn(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        if server.cert is None or server.name is None:
            continue
        holder, pem = server.cert
        cert = _load_cert(pem)
        ptr = pointer("data", SERVER_CERT)
        if cert is None:
            yield on(holder, ptr, f"{SERVER_CERT} is not a PEM X.509 certificate")
        elif _cn(cert) != server.name:
            yield on(holder, ptr, f"{SERVER_CERT} CN is {_cn(cert)!r}, but clients dial and verify {server.name!r} (fed_server.json service.target)")


def certificate_chain(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        if server.cert is None:
            continue
        holder, pem = server.cert
        cert = _load_cert(pem)
        if cert is None:
            continue
        if server.root_ca is None:
            yield on(holder, pointer("data", SERVER_CERT), f"no {ROOT_CA} is mounted next to {SERVER_CERT}; clients cannot verify the server")
            continue
        root_holder, root_pem = server.root_ca
        root = _load_cert(root_pem)
        if root is None:
            yield on(root_holder, pointer("data", ROOT_CA), f"{ROOT_CA} is not a PEM X.509 certificate")
            continue
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and mismatched issuers alike
            yield on(
                holder,
                pointer("data", SERVER_CERT),
                f"{SERVER_CERT} is not signed by the {ROOT_CA} shipped with the kit (issuer {cert.issuer.rfc4514_string()})",
            )


def certificate_expired(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        for item, key in ((server.cert, SERVER_CERT), (server.root_ca, ROOT_CA)):
            if item is None:
                continue
            holder, pem = item
            cert = _load_cert(pem)
            if cert is None or model.now is None:
                continue
            if cert.not_valid_after_utc < model.now:
                yield on(holder, pointer("data", key), f"{key} expired on {cert.not_valid_after_utc.date().isoformat()}")
            elif cert.not_valid_before_utc > model.now:
                yield on(holder, pointer("data", key), f"{key} is not valid before {cert.not_valid_before_utc.date().isoformat()}")


def fed_server_json_invalid(model: Model) -> Iterator[Hit]:
    for _, server in servers(model):
        if server.error:
            yield on(server.config, pointer("data", FED_SERVER), server.error)


def _san_names(pem: str) -> set[str]:
    from cryptography import x509

    cert = _load_cert(pem)
    if cert is None:
        return set()
    try:
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return set()


def client_config_mismatch(model: Model) -> Iterator[Hit]:
    """A site cluster's client (fed_client.json) agrees with the server the repo deploys for its project."""
    servers = [s for root in model.sync_roots for s in find_servers(list(root.objects)) if not s.error]
    for root in model.sync_roots:
        for client in find_clients(list(root.objects)):
            server = next((s for s in servers if project_of(s) == client.project), None)
            if server is None:
                continue
            ptr = pointer("data", FED_CLIENT)
            if client.port != server.fl_port:
                yield on(client.config, ptr, f"fed_client.json dials port {client.port}, but the server's fl port is {server.fl_port}")
            if client.identity != server.name:
                yield on(
                    client.config, ptr, f"fed_client.json expects server identity {client.identity!r}, but the server is {server.name!r} (its certificate CN)"
                )
            dialled = {n for n in (_san_names(server.cert[1]) if server.cert else set()) | {server.name or ""} if n}
            if client.host not in dialled:
                yield on(
                    client.config,
                    ptr,
                    f"fed_client.json dials {client.host!r}, a name the server certificate was not issued for ({', '.join(sorted(dialled))})",
                )
            if client.root_ca is not None and server.root_ca is not None and _load_cert(client.root_ca[1]) != _load_cert(server.root_ca[1]):
                yield on(
                    client.root_ca[0], pointer("data", ROOT_CA), f"the client's {ROOT_CA} is not the server's root CA: the client cannot verify the server"
                )


RULES = (
    Rule(
        "FG608",
        "certificate-cn",
        ERROR,
        "The server certificate's CN equals the name clients dial (the server participant name).",
        "Re-provision the server certificate for the right name (drop its entry from the state's cert.json and re-render).",
        certificate_cn,
    ),
    Rule(
        "FG609",
        "certificate-chain",
        ERROR,
        "The server certificate is signed by the rootCA.pem shipped in the same kit.",
        "Re-render so server.crt and rootCA.pem come from the same provisioning state.",
        certificate_chain,
    ),
    Rule(
        "FG610",
        "certificate-expired",
        ERROR,
        "The server certificate and the root CA are within their validity period.",
        "Re-issue the certificates (NVFlare leaf and root validity default to 360 days) and re-render.",
        certificate_expired,
    ),
    Rule(
        "FG612",
        "fed-server-json-invalid",
        ERROR,
        "fed_server.json in the server's ConfigMap is readable and names its target and ports.",
        "Re-render the kit ConfigMap from the provisioning state.",
        fed_server_json_invalid,
    ),
    Rule(
        "FG613",
        "client-config-mismatch",
        ERROR,
        "A site cluster's fed_client.json dials the server's fl port and name, expects its identity, and trusts its root CA.",
        "Re-render: the site kit and the server kit must come from the same spec and state.",
        client_config_mismatch,
    ),
)
