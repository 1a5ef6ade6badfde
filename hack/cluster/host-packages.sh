#!/usr/bin/env bash
# Debian packages the cluster test tier needs on the host (root, Debian bookworm):
#   docker.io                      builds the image (its dockerd is started only for the build)
#   containerd, runc               the node's container runtime (our own containerd instance)
#   containernetworking-plugins    CNI bridge, host-local, loopback, portmap (/usr/lib/cni)
#   debootstrap                    the local base image (bookworm + Python 3.11)
#   iptables                       kube-proxy's Service rules
# Installs only what is missing (one `apt-get update` first); a second run takes milliseconds.
# Services are not started by the packages (the host has no init system that would run them,
# and policy-rc.d refuses); everything is started and stopped by the test tier itself.
set -euo pipefail

PACKAGES=(docker.io containerd runc containernetworking-plugins debootstrap iptables)
log() { echo "[host-packages] $*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  log "ERROR: missing Debian packages ${missing[*]} and not root: install them, or set TOKENPOOL_KUBECONFIG."
  exit 1
fi
t=$SECONDS
log "installing ${missing[*]} (apt-get) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed in $((SECONDS - t))s"
