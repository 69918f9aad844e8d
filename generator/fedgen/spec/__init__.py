"""The federation spec: loading, checking, and the typed model."""

from fedgen.spec.load import load_federation
from fedgen.spec.model import Federation

__all__ = ["Federation", "load_federation"]
