"""Pure checks of inspected enrollment files against a federation spec (and the root the server trusts)."""

from __future__ import annotations

import shlex

from fedgen.enroll.fingerprints import fingerprint
from fedgen.enroll.request_zip import RequestInfo
from fedgen.enroll.signed_zip import SignedInfo
from fedgen.errors import InputError
from fedgen.spec.model import Federation, Site


def request_site(fed: Federation, name: str, *, what: str) -> Site:
    """The spec's site `name` when it enrolls by request; InputError (with the way out) otherwise."""
    site = next((s for s in fed.sites if s.name == name), None)
    if site is None:
        enrolling = ", ".join(s.name for s in fed.sites if s.enrollment == "request") or "none"
        raise InputError(
            f"{what}: site {name!r} is not declared in {fed.name}'s spec (sites enrolling by request: {enrolling}); "
            f"add it to spec.sites with `enrollment: request` through a reviewed change first"
        )
    if site.enrollment != "request":
        raise InputError(
            f"{what}: site {name!r} enrolls by bundle (the default): fedgen makes its key, so it gets "
            f"`fedgen client-bundle {shlex.quote(name)} --spec SPEC`; to let the site keep its own key, set "
            f"`enrollment: request` for it in the spec and render"
        )
    return site


def check_request(fed: Federation, info: RequestInfo, *, what: str = "request") -> Site:
    """The request is for this federation's project and for a site the spec declares with enrollment: request
    and the same org. Returns that site."""
    if info.project != fed.name:
        raise InputError(f"{what}: the request is for project {info.project!r}, but this spec is federation {fed.name!r}")
    site = request_site(fed, info.name, what=what)
    if info.org != site.org:
        raise InputError(
            f"{what}: site {info.name!r} asks for org {info.org!r}, the spec says {site.org!r}; make a new request with the participant.yaml of `fedgen enroll kit`"
        )
    return site


def check_signed(fed: Federation, info: SignedInfo, root_pem: bytes | None, *, what: str = "signed zip") -> Site:
    """The signed zip is for this project, a declared request site with its org, and (when root_pem is given,
    normally the server's rootCA.pem from the rendered ConfigMap) was issued under that root."""
    if info.project != fed.name:
        raise InputError(f"{what}: signed for project {info.project!r}, but this spec is federation {fed.name!r}")
    site = request_site(fed, info.name, what=what)
    if info.org != site.org:
        raise InputError(f"{what}: certificate for org {info.org!r}, the spec says {site.org!r}")
    if root_pem is not None and info.rootca_fingerprint != fingerprint(root_pem):
        raise InputError(
            f"{what}: issued under root CA {info.rootca_fingerprint}, but the server trusts {fingerprint(root_pem)}; "
            f"approve the request again (fedgen enroll approve)"
        )
    return site


def check_pair(request: RequestInfo, signed: SignedInfo, *, what: str = "signed zip") -> None:
    """The signed zip answers this very request: same site, request id, CSR and public key."""
    if (request.project, request.name, request.org) != (signed.project, signed.name, signed.org):
        raise InputError(
            f"{what}: answers {signed.project}/{signed.name} (org {signed.org}), the request is {request.project}/{request.name} (org {request.org})"
        )
    if signed.request_id != request.request_id or signed.csr_sha256 != request.csr_sha256 or signed.public_key_sha256 != request.public_key_sha256:
        raise InputError(f"{what}: answers another request of {signed.name} (request id, CSR or public key differ); approve the committed request again")
