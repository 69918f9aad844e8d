"""Certificates and startup kits, made by NVFlare's own provisioning library.

- policy: who gets a new certificate, and why (pure);
- lighter: the only module that imports nvflare (lazily): NVFlare's Provisioner in a private temporary root;
- runner and worker: parallel issuance in worker processes;
- kitcache: kits kept in the state, so a render that issues nothing does not run NVFlare;
- static: the kit files that need no key, for validate;
- core: `provision()`, which ties them together.
"""

from __future__ import annotations

from fedgen.provision.core import ProvisionResult, provision
from fedgen.provision.kit import KitFile

__all__ = ["KitFile", "ProvisionResult", "provision"]
