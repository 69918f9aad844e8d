"""The federation spec: loading, checking, and the typed model.

load_federation and Federation are imported on first use (PEP 562): a reader of one light module of this
package (semantic's certificate paths) or of the size limit does not pay for jsonschema, ruamel.yaml and the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedgen.spec.load import load_federation
    from fedgen.spec.model import Federation

__all__ = ["MAX_BYTES", "Federation", "load_federation"]
MAX_BYTES = 1024 * 1024  # the largest spec file the loader reads (fedgen.spec.yamlsafe)
_HOMES = {"load_federation": "fedgen.spec.load", "Federation": "fedgen.spec.model"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
