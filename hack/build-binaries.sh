#!/usr/bin/env bash
# Build (once) the control-plane binaries the tests and `tokenpool dev` run: etcd, kube-apiserver
# (from hack/controlplane, pinned by its go.mod/go.sum) and helm. Cached outside the repository
# under $TOKENPOOL_CACHE (default ~/.cache/tokenpool), keyed by version; rebuilt only when missing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$HERE/controlplane/go.mod")"
ETCD_VERSION="$(awk '$1=="go.etcd.io/etcd/server/v3" {print $2; exit}' "$HERE/controlplane/go.mod")"
HELM_VERSION="v3.22.0"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"

log() { echo "[build-binaries] $*" >&2; }

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

pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

build() {  # name, dir, package, ldflags
  local t=$SECONDS
  log "building $1 (this can take many minutes on 2 cores; go shows packages as it compiles them) ..."
  (cd "$2" && go build -v -ldflags "$4" -o "$BIN.partial/$1" "$3" 2>&1 \
    | awk '{n++; if (n % 200 == 0) {printf "[build-binaries]   %s: %d packages compiled\n", name, n > "/dev/stderr"}}' name="$1")
  [[ -x "$BIN.partial/$1" ]] || { log "ERROR: building $1 failed"; exit 1; }
  log "built $1 in $((SECONDS - t))s"
}

[[ -x "$BIN.partial/etcd" ]] || build etcd "$HERE/controlplane" ./cmd/etcd "-s -w"
[[ -x "$BIN.partial/kube-apiserver" ]] || build kube-apiserver "$HERE/controlplane" ./cmd/kube-apiserver "$ldflags"
if [[ ! -x "$BIN.partial/helm" ]]; then
  t=$SECONDS
  log "building helm $HELM_VERSION ..."
  GOBIN="$BIN.partial" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "built helm in $((SECONDS - t))s"
fi

rm -rf "$BIN" && mv "$BIN.partial" "$BIN"
log "all binaries built in $((SECONDS - started))s -> $BIN"
echo "$BIN"
