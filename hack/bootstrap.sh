#!/usr/bin/env bash
# Everything `make dev` and `make test` need on a fresh machine: the virtualenv with the pinned
# Python packages (re-installed only when pyproject.toml changes) and the Go-built control plane
# binaries (built only when missing from the cache). Idempotent; a second run takes seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
cd "$ROOT"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bootstrap] creating virtualenv $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.tokenpool-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "[bootstrap] installing Python packages (pinned in pyproject.toml)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev,test]"
  echo "$want" > "$stamp"
fi

# `make dev` skips this: `tokenpool dev` builds them itself, with a progress bar (or uses a cluster).
if [[ -z "${TOKENPOOL_KUBECONFIG:-}" && "${TOKENPOOL_SKIP_BINARIES:-}" != 1 ]]; then
  t=$SECONDS
  bash "$ROOT/hack/build-binaries.sh" >/dev/null
  echo "[bootstrap] control-plane binaries ready ($((SECONDS - t))s)" >&2
fi

# The cluster test tier (`pytest -m cluster`): Debian's containerd/runc/CNI/docker/debootstrap and
# kubelet & co. built from the same Go module. Its images are built by the test session itself
# (from this checkout, cached by content). TOKENPOOL_SKIP_CLUSTER=1 skips both (and the tier).
if [[ -z "${TOKENPOOL_KUBECONFIG:-}" && "${TOKENPOOL_SKIP_BINARIES:-}" != 1 && "${TOKENPOOL_SKIP_CLUSTER:-}" != 1 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "[bootstrap] not root: the cluster test tier is skipped (it runs containerd and a kubelet)" >&2
    exit 0
  fi
  t=$SECONDS
  bash "$ROOT/hack/cluster/host-packages.sh"
  bash "$ROOT/hack/cluster/build-node-binaries.sh" >/dev/null
  echo "[bootstrap] cluster-tier packages and binaries ready ($((SECONDS - t))s)" >&2
fi
