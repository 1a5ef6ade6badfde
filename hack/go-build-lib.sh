# Shared by hack/build-binaries.sh and hack/cluster/build-node-binaries.sh (sourced, not run):
# how Kubernetes components are built from hack/controlplane's pinned k8s.io/kubernetes module and
# how pinned Go tools are installed, into "$BIN.partial". The caller sets BIN and TAG (its log
# prefix) and K8S_VERSION before calling these.

log() { echo "[$TAG] $*" >&2; }

# k8s_version GO_MOD: the k8s.io/kubernetes version a go.mod pins.
k8s_version() { awk '$1=="k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$1"; }

# The version stamp `kubectl version` and the components report, as release builds set it.
k8s_ldflags() {
  local pkg=k8s.io/component-base/version
  echo "-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
    "-X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
}

# go_build NAME DIR PACKAGE LDFLAGS. Progress: go -v prints each package as it compiles it; one
# line per 200 (packages already in the Go build cache are neither printed nor compiled again).
go_build() {
  local t=$SECONDS
  log "building $1 (minutes on 2 cores the first time; go shows packages as it compiles them) ..."
  (cd "$2" && go build -v -ldflags "$4" -o "$BIN.partial/$1" "$3" 2>&1 \
    | awk '{n++; if (n % 200 == 0) {printf "[%s]   %s: %d packages compiled\n", tag, name, n > "/dev/stderr"}}' tag="$TAG" name="$1")
  [[ -x "$BIN.partial/$1" ]] || { log "ERROR: building $1 failed"; exit 1; }
  log "built $1 in $((SECONDS - t))s"
}

# go_tool NAME MODULE/CMD VERSION VERSION_VARIABLE: a pinned tool by `go install`, its version
# variable set as its release builds set it.
go_tool() {
  [[ -x "$BIN.partial/$1" ]] && return 0
  local t=$SECONDS
  log "building $1 $3 ..."
  GOBIN="$BIN.partial" go install -ldflags "-s -w -X $4=$3" "$2@$3"
  log "built $1 in $((SECONDS - t))s"
}

# finish: the partial directory becomes the cached one (so an interrupted build is never used).
finish() {
  rm -rf "$BIN" && mv "$BIN.partial" "$BIN"
  log "all built in $((SECONDS - started))s -> $BIN"
  echo "$BIN"
}
