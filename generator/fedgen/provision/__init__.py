"""Certificates and startup kits, made by NVFlare's own provisioning library (see `fedgen.provision.core`).

This package is the only place in fedgen that imports nvflare, and it does so lazily inside functions.
"""

from __future__ import annotations

from fedgen.provision.core import KitFile, ProvisionResult, provision

__all__ = ["KitFile", "ProvisionResult", "provision"]
