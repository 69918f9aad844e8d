"""Certificates and startup kits, made by NVFlare's own provisioning library.

- policy: who gets a new certificate, and why (pure);
- lighter: the only module that imports nvflare (lazily): NVFlare's Provisioner in a private temporary root;
- runner and worker: parallel issuance in worker processes;
- kitcache: kits kept in the state, so a render that issues nothing does not run NVFlare;
- static: the kit files that need no key, for validate;
- core: `provision()`, which ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedgen.provision.kit import KitFile

if TYPE_CHECKING:
    from fedgen.provision.core import ProvisionResult, provision

__all__ = ["KitFile", "ProvisionResult", "provision"]


def __getattr__(name: str) -> Any:
    """core on first use: a worker process (`python -m fedgen.provision.worker`) and validate, which import
    modules of this package, need neither core nor the state code it imports (~0.07 s of a worker's start)."""
    if name in ("ProvisionResult", "provision"):
        from fedgen.provision import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
