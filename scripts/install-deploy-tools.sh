#!/usr/bin/env bash
# Installs the tools tests/deploy checks the deployment files with, where no container engine
# runs (docs/deploy.md, "How these files are checked"):
#
#   kustomize            renders deploy/k8s/overlays/*; `go install` of a pinned release
#                        into $CACHE_ROOT/bin (from the Go module proxy, built once)
#   kubernetes-validate  validates every rendered object against the Kubernetes OpenAPI
#                        schemas it bundles (offline), in a venv of its own under $CACHE_ROOT:
#                        nothing is added to the project's dependencies
#   docker-compose       `docker-compose config` validates ymls/*/docker-compose.yml; Debian's
#                        v1 package, which needs no engine (and no DOCKER_HOST) for `config`
#
# Idempotent: what is there at the pinned version is reused, and the script then only prints
# the paths. Without root, docker-compose is not installed (the script says so); without Go,
# kustomize is not built. The tests needing a missing tool then skip locally and fail in CI
# (CI=true), so a broken install cannot hide.
set -euo pipefail

KUSTOMIZE_VERSION="v5.7.1"            # needs Go >= 1.22.7 to build
KUBERNETES_VALIDATE_VERSION="1.37.0"  # bundles the schemas of Kubernetes 1.25 to 1.37
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rechecker"
BIN_DIR="$CACHE_ROOT/bin"
KUSTOMIZE_BIN="$BIN_DIR/kustomize"
KV_DIR="$CACHE_ROOT/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
KV_BIN="$KV_DIR/bin/kubernetes-validate"
PYTHON="${PYTHON:-python3}"

note() { echo "install-deploy-tools: $*" >&2; }

install_kustomize() {
    if [[ -x "$KUSTOMIZE_BIN" ]] &&
        [[ "$("$KUSTOMIZE_BIN" version 2>/dev/null)" == "$KUSTOMIZE_VERSION" ]]; then
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        note "go not found: cannot build kustomize $KUSTOMIZE_VERSION into $KUSTOMIZE_BIN;" \
            "tests needing it will skip meanwhile"
        return 0
    fi
    note "building kustomize $KUSTOMIZE_VERSION (once, cached in $BIN_DIR)"
    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand $work now: it is local to this function
    trap "rm -rf '$work'" EXIT
    # Build aside and move into place, so an interrupted build never leaves a broken binary.
    GOBIN="$work" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    mkdir -p "$BIN_DIR"
    mv -f "$work/kustomize" "$KUSTOMIZE_BIN"
    [[ "$("$KUSTOMIZE_BIN" version)" == "$KUSTOMIZE_VERSION" ]]
}

install_kubernetes_validate() {
    if [[ -x "$KV_BIN" ]] &&
        [[ "$("$KV_BIN" --version 2>/dev/null)" == "$KUBERNETES_VALIDATE_VERSION" ]]; then
        return 0
    fi
    note "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $KV_DIR"
    rm -rf "$KV_DIR"
    mkdir -p "$CACHE_ROOT"
    # uv when there (the Makefile installs it first), else the standard venv and pip.
    if "$PYTHON" -m uv --version >/dev/null 2>&1; then
        "$PYTHON" -m uv venv --quiet --python "$PYTHON" "$KV_DIR"
        "$PYTHON" -m uv pip install --quiet --python "$KV_DIR/bin/python" \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    else
        "$PYTHON" -m venv "$KV_DIR"
        "$KV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
    [[ "$("$KV_BIN" --version)" == "$KUBERNETES_VALIDATE_VERSION" ]]
}

install_docker_compose() {
    if command -v docker-compose >/dev/null 2>&1; then
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        note "not root: install docker-compose (apt-get install docker-compose);" \
            "tests needing it will skip meanwhile"
        return 0
    fi
    note "installing docker-compose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker-compose >/dev/null
}

install_kustomize
install_kubernetes_validate
install_docker_compose

if [[ -x "$KUSTOMIZE_BIN" ]]; then
    echo "kustomize: $KUSTOMIZE_BIN ($KUSTOMIZE_VERSION)"
else
    echo "kustomize: missing"
fi
echo "kubernetes-validate: $KV_BIN ($KUBERNETES_VALIDATE_VERSION)"
echo "docker-compose: $(command -v docker-compose || echo "missing")"
