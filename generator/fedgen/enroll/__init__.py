"""Enrollment by request: a site makes its own key with NVFlare's distributed provisioning and joins through
files that are safe to commit (see docs/enrollment.md).

For other parts of fedgen (validate, bundles, tests), the pure helpers:
    inspect_request_zip(data) -> RequestInfo     shape, no key, digests, CSR (signature, CN, org, RSA >= 2048)
                                                 (PrivateKeyFound, an InputError, when a key is inside)
    inspect_signed_zip(data) -> SignedInfo       shape, no key, cert chains to its rootCA.pem, signature, digests
    check_request(fed, info) / check_signed(fed, info, root_pem) / check_pair(request, signed)
                                                 against the spec (project, declared request site, org) and the
                                                 server's root; all raise InputError with a one-line message
    request_path / signed_path / classify        where the files live (enrollment/<federation>/...)
    server_root_pem(repo, fed)                   rootCA.pem of the rendered startup ConfigMap (or None)
    fingerprint(pem) / key_fingerprint(sha256 hex) / chains_to(cert, root) / holds_private_key(bytes)
The commands: fedgen.enroll.kit.make_kit and fedgen.enroll.approve.approve.
"""

from __future__ import annotations

from pathlib import Path

from fedgen.enroll.fingerprints import chains_to, fingerprint, key_fingerprint
from fedgen.enroll.layout import ENROLLMENT_DIR, EnrollmentFile, classify, request_path, signed_path
from fedgen.enroll.policy import check_pair, check_request, check_signed, request_site
from fedgen.enroll.request_zip import RequestInfo, inspect_request_zip
from fedgen.enroll.rootca import from_repo as _from_repo
from fedgen.enroll.signed_zip import SignedInfo, inspect_signed_zip
from fedgen.enroll.zips import PrivateKeyFound, holds_private_key
from fedgen.spec.model import Federation


def server_root_pem(repo: Path, fed: Federation) -> bytes | None:
    """rootCA.pem (bytes) the server trusts, from the rendered ConfigMap in `repo`; None when not rendered."""
    found = _from_repo(repo, fed)
    return found[0] if found else None


__all__ = [
    "ENROLLMENT_DIR",
    "EnrollmentFile",
    "PrivateKeyFound",
    "RequestInfo",
    "SignedInfo",
    "chains_to",
    "check_pair",
    "check_request",
    "check_signed",
    "classify",
    "fingerprint",
    "holds_private_key",
    "inspect_request_zip",
    "inspect_signed_zip",
    "key_fingerprint",
    "request_path",
    "request_site",
    "server_root_pem",
    "signed_path",
]
