#!/usr/bin/env bash
# Build (once) what the cluster test tier runs besides etcd/kube-apiserver/helm: kubelet,
# kube-controller-manager, kube-scheduler and kube-proxy (from hack/controlplane, the same pinned
# k8s.io/kubernetes module as the API server), crictl (to tear pod sandboxes down properly) and
# the pod sandbox's `pause` program (hack/cluster/pause). Cached outside the repository under
# $TOKENPOOL_CACHE/node/<versions>/ (default ~/.cache/tokenpool), rebuilt only when missing.
# containerd, runc and the CNI plugins are Debian's (hack/cluster/host-packages.sh).
# Prints the bin directory on the last line of stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CP="$HERE/../controlplane"
K8S_VERSION="$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$CP/go.mod")"
CRICTL_VERSION="v1.37.0"
PAUSE_KEY="$(cat "$HERE/pause/main.go" "$HERE/pause/go.mod" | sha256sum | cut -c1-12)"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
BIN="$CACHE/node/k8s-$K8S_VERSION-crictl-$CRICTL_VERSION-pause-$PAUSE_KEY"
NAMES=(kubelet kube-controller-manager kube-scheduler kube-proxy crictl pause)

log() { echo "[build-node-binaries] $*" >&2; }

complete() { for n in "${NAMES[@]}"; do [[ -x "$1/$n" ]] || return 1; done; }
if complete "$BIN"; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null 2>&1 || { log "ERROR: Go is not installed (need Go >= 1.26)."; exit 1; }

mkdir -p "$BIN.partial"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
started=$SECONDS
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

# Progress: go -v prints each package as it compiles it; one line per 200 (packages already in
# the Go build cache from the kube-apiserver build are not printed, nor compiled again).
progress() {
  awk '{n++; if (n % 200 == 0) {printf "[build-node-binaries]   %s: %d packages compiled\n", name, n > "/dev/stderr"}}' name="$1"
}
build() {  # name, dir, package, ldflags
  local t=$SECONDS
  log "building $1 (minutes on 2 cores the first time) ..."
  (cd "$2" && go build -v -ldflags "$4" -o "$BIN.partial/$1" "$3" 2>&1 | progress "$1")
  [[ -x "$BIN.partial/$1" ]] || { log "ERROR: building $1 failed"; exit 1; }
  log "built $1 in $((SECONDS - t))s"
}

for name in kubelet kube-proxy kube-scheduler kube-controller-manager; do
  [[ -x "$BIN.partial/$name" ]] || build "$name" "$CP" "./cmd/$name" "$ldflags"
done
[[ -x "$BIN.partial/pause" ]] || build pause "$HERE/pause" . "-s -w"
if [[ ! -x "$BIN.partial/crictl" ]]; then
  t=$SECONDS
  log "building crictl $CRICTL_VERSION ..."
  GOBIN="$BIN.partial" go install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  log "built crictl in $((SECONDS - t))s"
fi

rm -rf "$BIN" && mv "$BIN.partial" "$BIN"
log "all node binaries built in $((SECONDS - started))s -> $BIN"
echo "$BIN"
