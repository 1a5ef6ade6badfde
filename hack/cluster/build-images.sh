#!/usr/bin/env bash
# Build the images the cluster test tier imports into its containerd (nothing is pulled):
#   * tokenpool's image, from this checkout's Dockerfile, on the base given by $TOKENPOOL_BASE_IMAGE
#     (default: the debootstrap bookworm + Python 3.11 root filesystem of base-rootfs.sh, imported);
#   * the pod sandbox image, FROM scratch with the `pause` program of build-node-binaries.sh.
# Each is saved as a `docker save` tarball under $TOKENPOOL_CACHE/images/, keyed by the content it
# is built from (the build context and Dockerfile; the pause binary), so an unchanged checkout
# costs nothing and a changed one is rebuilt (Docker's layer cache keeps that short).
# Docker: the running daemon if `docker info` answers; otherwise a private dockerd is started for
# the build (no bridge, no iptables rules: builds use the host network) and stopped afterwards.
# The host CA bundle ($PIP_CERT, when set) reaches pip as a BuildKit secret: never in a layer.
# Prints KEY=VALUE lines (TOKENPOOL_IMAGE, TOKENPOOL_IMAGE_TAR, TOKENPOOL_PAUSE_IMAGE,
# TOKENPOOL_PAUSE_TAR, TOKENPOOL_IMAGE_BYTES) on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
IMAGES="$CACHE/images"
REPO=tokenpool.local
DOCKER="${TOKENPOOL_DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
log() { echo "[build-images] $*" >&2; }
mkdir -p "$IMAGES"

# --- what the images are built from ----------------------------------------------------------
node_bin="$(bash "$HERE/build-node-binaries.sh" | tail -1)"
pause_key="$(sha256sum "$node_bin/pause" | cut -c1-12)"
PAUSE_IMAGE="$REPO/pause:$pause_key"
PAUSE_TAR="$IMAGES/pause-$pause_key.tar"

if [[ -n "${TOKENPOOL_BASE_IMAGE:-}" ]]; then
  base="$TOKENPOOL_BASE_IMAGE"
  base_tar=""
else
  base_tar="$(bash "$HERE/base-rootfs.sh" | tail -1)"
  base="$REPO/base:$(basename "$base_tar" .tar | sed 's/^base-//')"
fi
# The build context is what .dockerignore lets in (the same allow-list docker applies).
context_files() {
  cd "$ROOT" && sed -n 's/^!\(.*\)/\1/p' .dockerignore | sed 's:/$::' \
    | xargs -I{} find {} -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort
}
context_key="$( (cd "$ROOT" && context_files | xargs sha256sum; sha256sum Dockerfile; echo "$base") | sha256sum | cut -c1-16)"
IMAGE="$REPO/tokenpool:$context_key"
IMAGE_TAR="$IMAGES/tokenpool-$context_key.tar"

summary() {
  echo "TOKENPOOL_IMAGE=$IMAGE"
  echo "TOKENPOOL_IMAGE_TAR=$IMAGE_TAR"
  echo "TOKENPOOL_IMAGE_BYTES=$(cat "$IMAGE_TAR.size" 2>/dev/null || echo 0)"
  echo "TOKENPOOL_PAUSE_IMAGE=$PAUSE_IMAGE"
  echo "TOKENPOOL_PAUSE_TAR=$PAUSE_TAR"
}
if [[ -s "$IMAGE_TAR" && -s "$PAUSE_TAR" ]]; then
  summary
  exit 0
fi

# --- a Docker daemon for the build ------------------------------------------------------------
[[ -x "$DOCKER" ]] || { log "ERROR: no docker client (hack/cluster/host-packages.sh installs docker.io)"; exit 1; }
run_dir=""
stop_dockerd() {
  if [[ -n "$run_dir" && -f "$run_dir/dockerd.pid" ]]; then
    local pid; pid="$(cat "$run_dir/dockerd.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    # The cgroups our dockerd made (empty once it is gone).
    find /sys/fs/cgroup/*/docker -depth -type d -exec rmdir {} + 2>/dev/null || true
  fi
  [[ -n "$run_dir" ]] && rm -rf "$run_dir"
  return 0
}
trap stop_dockerd EXIT
if ! "$DOCKER" info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { log "ERROR: no dockerd (hack/cluster/host-packages.sh installs docker.io)"; exit 1; }
  run_dir="$(mktemp -d /tmp/tokenpool-dockerd-XXXXXX)"
  log "starting a private dockerd for the build (log: $CACHE/docker.log) ..."
  # Its image store is cached (warm builds reuse layers); it creates no bridge or iptables rules.
  dockerd --host="unix://$run_dir/docker.sock" --data-root="$CACHE/docker" --exec-root="$run_dir/exec" \
    --pidfile="$run_dir/dockerd.pid" --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    >"$CACHE/docker.log" 2>&1 &
  export DOCKER_HOST="unix://$run_dir/docker.sock"
  for _ in $(seq 300); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.1; done
  "$DOCKER" info >/dev/null 2>&1 || { log "ERROR: dockerd did not start:"; tail -20 "$CACHE/docker.log" >&2; exit 1; }
fi
export DOCKER_BUILDKIT=1

# --- the base image (only when it is ours) ---------------------------------------------------
if [[ -n "$base_tar" ]] && ! "$DOCKER" image inspect "$base" >/dev/null 2>&1; then
  log "importing the base root filesystem as $base ..."
  "$DOCKER" import "$base_tar" "$base" >/dev/null
fi

# --- the pause image -------------------------------------------------------------------------
if [[ ! -s "$PAUSE_TAR" ]]; then
  ctx="$(mktemp -d)"
  cp "$node_bin/pause" "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
  "$DOCKER" build -q -t "$PAUSE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
  "$DOCKER" save -o "$PAUSE_TAR.partial" "$PAUSE_IMAGE" && mv "$PAUSE_TAR.partial" "$PAUSE_TAR"
  log "pause image $PAUSE_IMAGE saved"
fi

# --- tokenpool's image -----------------------------------------------------------------------
if [[ ! -s "$IMAGE_TAR" ]]; then
  t=$SECONDS
  log "building $IMAGE on $base (pip downloads the pinned packages the first time) ..."
  secret=()
  [[ -n "${PIP_CERT:-}" && -s "${PIP_CERT:-}" ]] && secret=(--secret "id=pip-ca,src=$PIP_CERT")
  "$DOCKER" build --network=host --progress=plain "${secret[@]}" --build-arg "PYTHON_IMAGE=$base" \
    -t "$IMAGE" "$ROOT" 2>&1 | awk '/^#[0-9]+ (\[|DONE|CACHED|ERROR)|error|Error/ {print "[build-images]   " $0}' >&2
  "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || { log "ERROR: the image build failed"; exit 1; }
  "$DOCKER" image inspect -f '{{.Size}}' "$IMAGE" >"$IMAGE_TAR.size"
  "$DOCKER" save -o "$IMAGE_TAR.partial" "$IMAGE" && mv "$IMAGE_TAR.partial" "$IMAGE_TAR"
  log "built $IMAGE in $((SECONDS - t))s: $(( $(cat "$IMAGE_TAR.size") / 1000000 )) MB"
  # Keep the cache small: older tokenpool tarballs and images go.
  find "$IMAGES" -maxdepth 1 -name 'tokenpool-*.tar*' ! -name "tokenpool-$context_key.tar*" -delete
  "$DOCKER" images --format '{{.Repository}}:{{.Tag}}' "$REPO/tokenpool" | grep -vx "$IMAGE" \
    | xargs -r "$DOCKER" rmi >/dev/null 2>&1 || true
  "$DOCKER" image prune -f >/dev/null 2>&1 || true
  "$DOCKER" builder prune -f --keep-storage 1GB >/dev/null 2>&1 || true
fi
summary
