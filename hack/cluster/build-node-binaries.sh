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
TAG=build-node-binaries
# shellcheck source=hack/go-build-lib.sh
source "$HERE/../go-build-lib.sh"
K8S_VERSION="$(k8s_version "$CP/go.mod")"
CRICTL_VERSION="v1.37.0"
PAUSE_KEY="$(cat "$HERE/pause/main.go" "$HERE/pause/go.mod" | sha256sum | cut -c1-12)"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
BIN="$CACHE/node/k8s-$K8S_VERSION-crictl-$CRICTL_VERSION-pause-$PAUSE_KEY"
NAMES=(kubelet kube-controller-manager kube-scheduler kube-proxy crictl pause)

complete() { for n in "${NAMES[@]}"; do [[ -x "$1/$n" ]] || return 1; done; }
if complete "$BIN"; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null 2>&1 || { log "ERROR: Go is not installed (need Go >= 1.26)."; exit 1; }

mkdir -p "$BIN.partial"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
started=$SECONDS
ldflags="$(k8s_ldflags)"
for name in kubelet kube-proxy kube-scheduler kube-controller-manager; do
  [[ -x "$BIN.partial/$name" ]] || go_build "$name" "$CP" "./cmd/$name" "$ldflags"
done
[[ -x "$BIN.partial/pause" ]] || go_build pause "$HERE/pause" . "-s -w"
go_tool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/pkg/version.Version
finish
