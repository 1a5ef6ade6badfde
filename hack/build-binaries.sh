#!/usr/bin/env bash
# Build (once) the control-plane binaries the tests and `tokenpool dev` run: etcd, kube-apiserver
# (from hack/controlplane, pinned by its go.mod/go.sum) and helm. Cached outside the repository
# under $TOKENPOOL_CACHE (default ~/.cache/tokenpool), keyed by version; rebuilt only when missing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAG=build-binaries
# shellcheck source=hack/go-build-lib.sh
source "$HERE/go-build-lib.sh"
K8S_VERSION="$(k8s_version "$HERE/controlplane/go.mod")"
ETCD_VERSION="$(awk '$1=="go.etcd.io/etcd/server/v3" {print $2; exit}' "$HERE/controlplane/go.mod")"
HELM_VERSION="v3.22.0"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/etcd" && -x "$BIN/helm" ]]; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "ERROR: Go is not installed (need Go >= 1.26 to build kube-apiserver $K8S_VERSION)."
  log "       Install Go, or point TOKENPOOL_KUBECONFIG at an existing cluster (see README)."
  exit 1
fi
if ! go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1; then
  log "ERROR: cannot download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy ($(go env GOPROXY))."
  log "       Check network access to the Go module proxy, or set GOPROXY."
  exit 1
fi

mkdir -p "$BIN.partial"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
started=$SECONDS

ldflags="$(k8s_ldflags)"
[[ -x "$BIN.partial/etcd" ]] || go_build etcd "$HERE/controlplane" ./cmd/etcd "-s -w"
[[ -x "$BIN.partial/kube-apiserver" ]] || go_build kube-apiserver "$HERE/controlplane" ./cmd/kube-apiserver "$ldflags"
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" helm.sh/helm/v3/internal/version.version
finish
