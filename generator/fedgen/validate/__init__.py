"""Offline validation of a rendered repository (fedgen validate)."""

from typing import Any

__all__ = ["REGISTRY", "Finding", "Report", "validate"]


def __getattr__(name: str) -> Any:
    """Exports, imported on first use (importing fedgen.validate.kubeconform stays cheap)."""
    if name in ("validate", "Report"):
        from fedgen.validate import engine

        return getattr(engine, name)
    if name == "Finding":
        from fedgen.validate.finding import Finding

        return Finding
    if name == "REGISTRY":
        from fedgen.validate.rules import REGISTRY

        return REGISTRY
    raise AttributeError(f"module 'fedgen.validate' has no attribute {name!r}")
