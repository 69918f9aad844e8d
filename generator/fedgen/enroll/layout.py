"""Where enrollment files live in the GitOps repository.

    enrollment/<federation>/requests/<site>.request.zip   the site's `nvflare cert request` output (its PR)
    enrollment/<federation>/signed/<site>.signed.zip      `fedgen enroll approve` output (the operator's commit)

Outside every sync root (those are clusters/<cluster>/), so neither Config Sync nor Argo CD ever reads them,
and outside every render ledger (.fedgen/owned/<federation>.json), so no render or `fedgen remove` deletes
or overwrites them. Neither file holds a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENROLLMENT_DIR = "enrollment"
REQUESTS = "requests"
SIGNED = "signed"
REQUEST_SUFFIX = ".request.zip"
SIGNED_SUFFIX = ".signed.zip"

_PATH = re.compile(
    rf"^{ENROLLMENT_DIR}/(?P<federation>[^/]+)/(?P<folder>{REQUESTS}|{SIGNED})/(?P<site>[^/]+?)"
    rf"(?P<suffix>\{REQUEST_SUFFIX}|\{SIGNED_SUFFIX})$"
)


def federation_dir(federation: str) -> str:
    return f"{ENROLLMENT_DIR}/{federation}"


def request_path(federation: str, site: str) -> str:
    """Repo-relative posix path of a site's request zip."""
    return f"{ENROLLMENT_DIR}/{federation}/{REQUESTS}/{site}{REQUEST_SUFFIX}"


def signed_path(federation: str, site: str) -> str:
    """Repo-relative posix path of a site's signed zip."""
    return f"{ENROLLMENT_DIR}/{federation}/{SIGNED}/{site}{SIGNED_SUFFIX}"


@dataclass(frozen=True)
class EnrollmentFile:
    federation: str
    kind: str  # request | signed
    site: str


def classify(path: str) -> EnrollmentFile | None:
    """What a repo-relative path under enrollment/ is; None for anything not at a documented place.

    For validate: every file under enrollment/ that classify() does not recognise (or that sits in the wrong
    folder for its suffix) is out of place.
    """
    m = _PATH.fullmatch(path)
    if not m:
        return None
    kind = "request" if m["folder"] == REQUESTS else "signed"
    expected = REQUEST_SUFFIX if kind == "request" else SIGNED_SUFFIX
    if m["suffix"] != expected:
        return None
    return EnrollmentFile(m["federation"], kind, m["site"])
