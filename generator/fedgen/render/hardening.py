"""The hardening every NVFlare pod fedgen writes shares (server, site clusters, site bundles)."""

from __future__ import annotations

from typing import Any

from fedgen.spec.model import RUN_AS_ID

# NVFlare and Python write nothing outside the mounted folders with these (the root filesystem is read-only).
PROCESS_ENV: list[dict[str, str]] = [
    {"name": "HOME", "value": "/tmp"},
    {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
]


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": RUN_AS_ID,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "fsGroup": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
