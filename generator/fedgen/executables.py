"""Finding the external programs fedgen drives (kubectl, kubeconform, kubeseal)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fedgen.errors import ExternalError
from fedgen.paths import SOURCE_ROOT

# .ci/run installs pinned Go tools here (GOBIN), inside the workspace so CI can cache them.
TOOLS_BIN = SOURCE_ROOT / ".tools" / "bin"

INSTALL_HINTS = {
    "kubeconform": "go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0",
    "kubeseal": "go install github.com/bitnami-labs/sealed-secrets/cmd/kubeseal@v0.36.6",
    "kubectl": "install kubectl (with Kustomize v5), e.g. from the Google Cloud CLI",
}


def find_tool(name: str) -> Path:
    """$FEDGEN_<NAME>, then <repo>/.tools/bin/<name>, then PATH; ExternalError (exit 3) when missing."""
    env_var = f"FEDGEN_{name.upper()}"
    override = os.environ.get(env_var)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ExternalError(f"{name} not found: {env_var}={override} is not an executable file; install with: {_hint(name)}")
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ExternalError(f"{name} not found: not in ${env_var}, {local} or PATH; install with: {_hint(name)} (or run scripts/bootstrap.sh)")


def _hint(name: str) -> str:
    return INSTALL_HINTS.get(name, f"install {name}")
