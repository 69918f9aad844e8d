#!/usr/bin/env bash
# Install everything fedgen's example and tests need, inside the workspace where possible:
#   .venv/           Python 3.11 virtualenv with fedgen (editable) and the test extras
#   .tools/bin/      pinned Go tools: kubeconform, kubeseal
#   .cache/          pip and Go caches (CI may cache this folder)
# Idempotent and loud: a tool that cannot be installed stops the script with a clear message.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

KUBECONFORM_VERSION=v0.7.0
KUBESEAL_VERSION=v0.36.6
export PIP_CACHE_DIR="$ROOT/.cache/pip"
export GOMODCACHE="$ROOT/.cache/go-mod"
export GOCACHE="$ROOT/.cache/go-build"
export GOBIN="$ROOT/.tools/bin"
export GOFLAGS=-modcacherw

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# Debian packages: ip (network namespaces for the end-to-end test).
if ! command -v ip >/dev/null 2>&1; then
  say "installing iproute2"
  (apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null) || die "apt-get install iproute2 failed"
fi
command -v kubectl >/dev/null 2>&1 || die "kubectl (with Kustomize v5) is required: it builds every sync root"
kubectl kustomize --help >/dev/null 2>&1 || die "kubectl has no kustomize subcommand"
command -v go >/dev/null 2>&1 || die "Go is required to install kubeconform and kubeseal"
command -v git >/dev/null 2>&1 || die "git is required (client-bundle asks it whether a path is ignored; tests check ref names with it)"
# The tests plan the rendered variables against the reference architecture's declarations (offline).
command -v terraform >/dev/null 2>&1 || die "terraform is required: tests/test_terraform.py plans the rendered Terraform variables with it (preinstalled at /usr/local/bin/terraform on the project's machines)"
terraform version >/dev/null 2>&1 || die "terraform does not run (terraform version failed)"

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "$PYTHON is not Python 3.11"
stamp=.venv/.fedgen-installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  say "creating .venv and installing fedgen with test extras"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi

# The module version recorded in the binary is the reliable one (go install leaves -v at "development").
go_tool_version() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'; }

install_go_tool() {  # name module-path cmd-path version
  local name=$1 module=$2 cmd=$3 version=$4
  if [ -x ".tools/bin/$name" ] && [ "$(go_tool_version ".tools/bin/$name")" = "$version" ]; then
    return
  fi
  say "installing $name $version"
  go install "$module/$cmd@$version" || die "go install $module/$cmd@$version failed"
  [ "$(go_tool_version ".tools/bin/$name")" = "$version" ] || die "$name is not version $version after install"
}
install_go_tool kubeconform github.com/yannh/kubeconform cmd/kubeconform "$KUBECONFORM_VERSION"
install_go_tool kubeseal github.com/bitnami-labs/sealed-secrets cmd/kubeseal "$KUBESEAL_VERSION"
say "ready: .venv, .tools/bin/kubeconform $KUBECONFORM_VERSION, .tools/bin/kubeseal $KUBESEAL_VERSION"
