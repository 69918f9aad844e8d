"""The library API behind the CLI: every operation as a function with keyword-only arguments that returns data
and never prints. Errors are fedgen.errors classes, each carrying its exit code.

One module per family, the public names re-exported here:
    rendering   render, remove                          (RenderResult, RemoveResult)
    validation  validate, rules, retired_rule_ids, schema
    sites       client_bundle, enroll_kit, enroll_approve (BundleResult, EnrollKitResult, ApprovalResult)
    certs       certificates, rotate                     (CertificateReport)
    workspace   workspace_push
    state       state_unlock, unlock_before              (UnlockOutcome)
    cluster     status, bootstrap, server_address

A family's module is imported on first use of one of its names: they pull in NVFlare, the Kubernetes client
and google-cloud-storage, which a command that does not use them should not wait for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_FAMILIES: dict[str, tuple[str, ...]] = {
    "rendering": ("RemoveResult", "RenderResult", "remove", "render"),
    "validation": ("retired_rule_ids", "rules", "schema", "validate"),
    "sites": ("FROM_CLUSTER", "ApprovalResult", "BundleResult", "EnrollKitResult", "client_bundle", "enroll_approve", "enroll_kit"),
    "certs": ("CertificateReport", "certificates", "rotate"),
    "workspace": ("workspace_push",),
    "state": ("UnlockOutcome", "state_unlock", "unlock_before"),
    "cluster": ("DEFAULT_TIMEOUT", "bootstrap", "server_address", "status"),
}
_FAMILY_OF = {name: family for family, names in _FAMILIES.items() for name in names}

__all__ = [  # the names of _FAMILIES (tests/cli/test_cli.py holds them equal), spelled out for linters
    "ApprovalResult",
    "BundleResult",
    "CertificateReport",
    "DEFAULT_TIMEOUT",
    "EnrollKitResult",
    "FROM_CLUSTER",
    "RemoveResult",
    "RenderResult",
    "UnlockOutcome",
    "bootstrap",
    "certificates",
    "client_bundle",
    "enroll_approve",
    "enroll_kit",
    "remove",
    "render",
    "retired_rule_ids",
    "rotate",
    "rules",
    "schema",
    "server_address",
    "state_unlock",
    "status",
    "unlock_before",
    "validate",
    "workspace_push",
]


def __getattr__(name: str) -> Any:
    family = _FAMILY_OF.get(name)
    if family is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{family}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from fedgen.api.certs import CertificateReport, certificates, rotate
    from fedgen.api.cluster import DEFAULT_TIMEOUT, bootstrap, server_address, status
    from fedgen.api.rendering import RemoveResult, RenderResult, remove, render
    from fedgen.api.sites import FROM_CLUSTER, ApprovalResult, BundleResult, EnrollKitResult, client_bundle, enroll_approve, enroll_kit
    from fedgen.api.state import UnlockOutcome, state_unlock, unlock_before
    from fedgen.api.validation import retired_rule_ids, rules, schema, validate
    from fedgen.api.workspace import workspace_push
