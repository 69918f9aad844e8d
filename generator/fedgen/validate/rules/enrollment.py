"""Enrollment by request (docs/enrollment.md): the files under enrollment/ that sites and operators commit.

    enrollment/<federation>/requests/<site>.request.zip   `nvflare cert request` output (the site's PR)
    enrollment/<federation>/signed/<site>.signed.zip      `fedgen enroll approve` output (the operator's commit)

collect/enrollment.py reads each file (at most 64 KiB) and runs fedgen.enroll's pure inspections on it; these rules
compare the results with the path, the federation's spec (fedgen.enroll's policy checks) and the root CA
the server trusts (rootCA.pem of its rendered ConfigMap). One defect fires one rule: a zip that is malformed
or holds a key is not checked further, a file of an unknown federation is not checked against a spec, and a
signed zip is paired only with a well-formed request.

The rules span three families: FG1xx (where the files are and whom they are for), FG4xx (a private key
inside), FG6xx (the certificate and the request/signed pair agree with the rest of the repo).
"""

from __future__ import annotations

from collections.abc import Iterator

from fedgen.errors import InputError
from fedgen.validate.finding import ERROR, WARNING
from fedgen.validate.model import EnrollmentZip, Model, SpecInfo
from fedgen.validate.rule import Hit, Rule, at

REQUEST_PLACE = "enrollment/<federation>/requests/<site>.request.zip"
SIGNED_PLACE = "enrollment/<federation>/signed/<site>.signed.zip"


def _reason(exc: InputError, what: str) -> str:
    return " ".join(str(exc).split()).removeprefix(f"{what}: ")


def _known(model: Model, z: EnrollmentZip) -> bool:
    return z.federation is not None and model.ledger_of(z.federation) is not None


def _clean(model: Model) -> Iterator[EnrollmentZip]:
    """Files at a documented place, of a federation rendered here, that inspected clean (no key, well formed)."""
    for z in model.enrollment:
        if z.placed and _known(model, z) and z.private_key is None and z.error is None and (z.request or z.signed):
            yield z


def _with_spec(model: Model) -> Iterator[tuple[EnrollmentZip, SpecInfo]]:
    for z in _clean(model):
        info = model.federation_spec(z.federation or "")
        if info is not None and info.federation is not None:
            yield z, info


def _request_of(model: Model, z: EnrollmentZip) -> EnrollmentZip | None:
    """The request committed for the site a signed zip is named after (whatever state it is in)."""
    from fedgen.enroll import request_path

    wanted = request_path(z.federation or "", z.site or "")
    return next((r for r in model.enrollment if r.path == wanted), None)


# ---------------------------------------------------------------------------------------------- FG1xx


def enrollment_file_misplaced(model: Model) -> Iterator[Hit]:
    for z in model.enrollment:
        if z.placed:
            continue
        name = z.path.rsplit("/", 1)[-1]
        if name.endswith(".request.zip"):
            hint = f"a request zip belongs at {REQUEST_PLACE}"
        elif name.endswith(".signed.zip"):
            hint = f"a signed zip belongs at {SIGNED_PLACE}"
        else:
            hint = f"only request and signed zips belong under enrollment/ ({REQUEST_PLACE}, {SIGNED_PLACE})"
        yield at(z.path, None, f"is not at a documented place: {hint}")


def enrollment_federation_unknown(model: Model) -> Iterator[Hit]:
    known = sorted({ledger.federation for ledger in model.ledgers if ledger.federation})
    for z in model.enrollment:
        if z.placed and not _known(model, z):
            here = ", ".join(known) or "none"
            yield at(
                z.path,
                None,
                f"is filed under federation {z.federation!r}, which is not rendered in this repo "
                f"(no .fedgen/owned/{z.federation}.json; federations here: {here})",
            )


def enrollment_file_name_mismatch(model: Model) -> Iterator[Hit]:
    for z in _clean(model):
        if z.request is not None and z.request.name != z.site:
            yield at(z.path, None, f"holds the request of site {z.request.name!r}, but its file name says site {z.site!r}")


def enrollment_zip_malformed(model: Model) -> Iterator[Hit]:
    for z in model.enrollment:
        if z.placed and z.private_key is None and z.error is not None:
            yield at(z.path, None, f"is not a well-formed {z.kind} zip: {z.error}")


def enrollment_site_undeclared(model: Model) -> Iterator[Hit]:
    if not model.enrollment:
        return  # fedgen.enroll (and cryptography) imported only when there is something to check
    from fedgen.enroll import check_request, check_signed

    for z, info in _with_spec(model):
        fed = info.federation
        assert fed is not None  # _with_spec yields loaded specs only
        try:
            if z.request is not None:
                check_request(fed, z.request, what=z.path)
            elif z.signed is not None:
                check_signed(fed, z.signed, None, what=z.path)  # the root is FG614's
        except InputError as exc:
            yield at(z.path, None, f"{_reason(exc, z.path)} ({info.path})")


def enrollment_signed_without_request(model: Model) -> Iterator[Hit]:
    if not model.enrollment:
        return  # fedgen.enroll (and cryptography) imported only when there is something to check
    from fedgen.enroll import request_path

    for z in _clean(model):
        if z.signed is not None and _request_of(model, z) is None:
            yield at(z.path, None, f"answers a request that is not in the repo: {request_path(z.federation or '', z.site or '')} is missing")


# ---------------------------------------------------------------------------------------------- FG4xx


def enrollment_zip_private_key(model: Model) -> Iterator[Hit]:
    for z in model.enrollment:
        if z.private_key is not None:
            yield at(z.path, None, f"{z.private_key}; it is exposed to everyone who can read the repository")


# ---------------------------------------------------------------------------------------------- FG6xx


def enrollment_certificate_untrusted(model: Model) -> Iterator[Hit]:
    if not model.enrollment:
        return  # fedgen.enroll (and cryptography) imported only when there is something to check
    from fedgen.enroll import fingerprint

    for z, info in _with_spec(model):
        signed = z.signed
        if signed is None:
            continue
        if signed.name != z.site:
            yield at(
                z.path,
                None,
                f"holds a certificate for CN {signed.name!r}, but its file name says site {z.site!r}: "
                f"{z.site} cannot use it and {signed.name} would not find it",
                pointer="/certificate/CN",
            )
        root = info.server_root_pem
        if root is not None and signed.rootca_fingerprint != fingerprint(root):
            yield at(
                z.path,
                None,
                f"the certificate was issued under root CA {signed.rootca_fingerprint}, but the server "
                f"trusts {fingerprint(root)} (rootCA.pem of its rendered ConfigMap): the site could not connect",
                pointer="/rootCA.pem",
            )


def enrollment_pair_mismatch(model: Model) -> Iterator[Hit]:
    if not model.enrollment:
        return  # fedgen.enroll (and cryptography) imported only when there is something to check
    from fedgen.enroll import check_pair

    for z in _clean(model):
        if z.signed is None:
            continue
        request = _request_of(model, z)
        if request is None or request.request is None:
            continue  # missing (FG114), or not a clean request (its own rule says why)
        try:
            check_pair(request.request, z.signed, what=z.path)
        except InputError as exc:
            yield at(z.path, None, f"{_reason(exc, z.path)} ({request.path})")


RULES = (
    Rule(
        "FG109",
        "enrollment-file-misplaced",
        ERROR,
        f"Every file under enrollment/ is a request or signed zip at its documented place ({REQUEST_PLACE} or {SIGNED_PLACE}).",
        "Move the file to its documented place, or remove it: nothing else belongs under enrollment/.",
        enrollment_file_misplaced,
    ),
    Rule(
        "FG110",
        "enrollment-federation-unknown",
        ERROR,
        "Enrollment files are filed under a federation rendered in this repo (one with .fedgen/owned/<federation>.json).",
        "Move the file under enrollment/<federation>/ of the federation it is for (the spec's metadata.name), or remove it.",
        enrollment_federation_unknown,
    ),
    Rule(
        "FG111",
        "enrollment-file-name-mismatch",
        ERROR,
        "A request zip is named after the site it requests (request.json's name).",
        "Name the file <site>.request.zip after the site inside it (or make a new request for the right site).",
        enrollment_file_name_mismatch,
    ),
    Rule(
        "FG112",
        "enrollment-zip-malformed",
        ERROR,
        "Request and signed zips have exactly the shape NVFlare 2.9 writes and fedgen enroll approve accepts (members, fields, digests, CSR or certificate).",
        "Never edit enrollment zips: the site makes a new request (nvflare cert request), the operator approves the committed request again (fedgen enroll approve).",
        enrollment_zip_malformed,
    ),
    Rule(
        "FG113",
        "enrollment-site-undeclared",
        ERROR,
        "A request or signed zip is for the federation's project and for a site its spec declares with enrollment: request, with the spec's org.",
        "Declare the site in the spec with `enrollment: request` and its org through a reviewed change, or remove the site's enrollment files.",
        enrollment_site_undeclared,
    ),
    Rule(
        "FG114",
        "enrollment-signed-without-request",
        WARNING,
        "Every signed zip sits next to the committed request it answers.",
        "Commit the reviewed request the signature answers at enrollment/<federation>/requests/<site>.request.zip, or remove the signed zip.",
        enrollment_signed_without_request,
    ),
    Rule(
        "FG408",
        "enrollment-zip-private-key",
        ERROR,
        "No zip under enrollment/ holds a private key.",
        "Remove the zip from the repo and its history; the key is exposed, so the site makes a new key and request (nvflare cert request).",
        enrollment_zip_private_key,
    ),
    Rule(
        "FG614",
        "enrollment-certificate-untrusted",
        ERROR,
        "A signed zip's certificate was issued by the root CA the server trusts (rootCA.pem of its rendered ConfigMap) for the site its file is named after.",
        "Approve the committed request again with fedgen enroll approve (it signs with the server's root) and commit the signed zip it writes.",
        enrollment_certificate_untrusted,
    ),
    Rule(
        "FG615",
        "enrollment-pair-mismatch",
        ERROR,
        "A signed zip answers the request committed for its site (same site, request id, CSR and public key).",
        "Approve the committed request again with fedgen enroll approve and commit the signed zip it writes; never pair files of different requests.",
        enrollment_pair_mismatch,
    ),
)
