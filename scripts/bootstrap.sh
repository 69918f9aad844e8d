#!/usr/bin/env bash
# Install everything fedgen's example and tests need, inside the workspace where possible:
#   .venv/           Python 3.11 virtualenv with fedgen (editable) and the test and lint extras
#   .tools/bin/      pinned Go tools: kubeconform, kubeseal, and kube-apiserver + etcd for the cluster tests
#   .cache/          pip and Go caches (CI may cache this folder)
# The first run builds kube-apiserver and etcd from source (tools/kube/): about 12 minutes on 2 cores, 1.8 GB
# RAM peak, 3 GB of Go caches. Every later run finds the pinned binaries and skips the build.
# `--without-api-server` leaves those two out (`make example` needs neither; the tests do, and fail without).
# Idempotent and loud: a tool that cannot be installed stops the script with a clear message.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WITH_API_SERVER=1
case "${1:-}" in
  "") ;;
  --without-api-server) WITH_API_SERVER=0 ;;
  *) printf 'usage: %s [--without-api-server]\n' "$0" >&2; exit 2 ;;
esac

KUBECONFORM_VERSION=v0.7.0
KUBESEAL_VERSION=v0.36.6
KUBERNETES_VERSION=v1.35.4   # also pinned in tools/kube/apiserver/go.mod (tools/kube/generate.sh writes it)
ETCD_VERSION=v3.6.17         # also pinned in tools/kube/etcd/go.mod
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
command -v terraform >/dev/null 2>&1 || die "terraform is required: tests/render/test_terraform.py plans the rendered Terraform variables with it (preinstalled at /usr/local/bin/terraform on the project's machines)"
terraform version >/dev/null 2>&1 || die "terraform does not run (terraform version failed)"

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "$PYTHON is not Python 3.11"
stamp=.venv/.fedgen-installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  say "creating .venv and installing fedgen with test and lint extras"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,lint]'
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

# kube-apiserver and etcd for the tests that apply rendered trees to a real API server. `go install` refuses
# both (replace directives in their go.mod), so tools/kube/ holds wrapper modules that build them.
# The version that counts is the wrapped module's (its "mod" line when the command is its own, else a "dep" line).
wrapped_version() { go version -m "$1" 2>/dev/null | awk -v m="$2" '($1 == "mod" || $1 == "dep") && $2 == m { print $3; exit }'; }
build_wrapped() {  # name wrapper-dir module package version ldflags
  local name=$1 dir=$2 module=$3 package=$4 version=$5 ldflags=$6
  if [ -x ".tools/bin/$name" ] && [ "$(wrapped_version ".tools/bin/$name" "$module")" = "$version" ]; then
    return
  fi
  grep -q "^require .* $version\$" "$dir/go.mod" \
    || die "$dir/go.mod does not pin $version: run tools/kube/generate.sh $KUBERNETES_VERSION $ETCD_VERSION"
  say "building $name $version from source (first time only; kube-apiserver takes about 12 minutes on 2 cores)"
  (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "-s -w $ldflags" -o "$ROOT/.tools/bin/$name.new" "$package") \
    || die "building $name $version failed (see the go output above)"
  mv -f ".tools/bin/$name.new" ".tools/bin/$name"
  [ "$(wrapped_version ".tools/bin/$name" "$module")" = "$version" ] || die "$name is not version $version after the build"
}
if [ "$WITH_API_SERVER" = 0 ]; then
  say "ready: .venv, .tools/bin/kubeconform $KUBECONFORM_VERSION, .tools/bin/kubeseal $KUBESEAL_VERSION (no kube-apiserver/etcd: --without-api-server)"
  exit 0
fi
kube_minor=${KUBERNETES_VERSION#v1.}; kube_minor=${kube_minor%%.*}
build_wrapped kube-apiserver tools/kube/apiserver k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$KUBERNETES_VERSION" \
  "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$kube_minor -X k8s.io/component-base/version.gitTreeState=clean"
build_wrapped etcd tools/kube/etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ""
# Run each binary once (captured first: grep -q would close the pipe early and pipefail would fail on it).
reported=$(.tools/bin/kube-apiserver --version 2>&1) || die ".tools/bin/kube-apiserver does not run: $reported"
grep -qx "Kubernetes $KUBERNETES_VERSION" <<<"$reported" || die ".tools/bin/kube-apiserver reports '$reported', not $KUBERNETES_VERSION"
reported=$(.tools/bin/etcd --version 2>&1) || die ".tools/bin/etcd does not run: $reported"
grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$reported" || die ".tools/bin/etcd does not report $ETCD_VERSION: $reported"
say "ready: .venv, .tools/bin/kubeconform $KUBECONFORM_VERSION, .tools/bin/kubeseal $KUBESEAL_VERSION, kube-apiserver $KUBERNETES_VERSION, etcd $ETCD_VERSION"
