"""Locating the etcd / kube-apiserver / helm binaries built by ``hack/build-binaries.sh``.

The build script caches them under ``$TOKENPOOL_CACHE/bin/k8s-<ver>-etcd-<ver>-helm-<ver>/``
(default ``~/.cache/tokenpool``). Finding them never builds (a build takes 15-25 minutes; a
test run must not start one by surprise, nor race one already running); :func:`build` does.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries.sh"
GO_MOD = REPO_ROOT / "hack" / "controlplane" / "go.mod"
REQUIRED = ("etcd", "kube-apiserver")


class BinariesNotFound(RuntimeError):
    """The control-plane binaries are not built (or TOKENPOOL_BIN_DIR points elsewhere)."""


def cache_dir() -> Path:
    return Path(os.environ.get("TOKENPOOL_CACHE") or Path.home() / ".cache" / "tokenpool")


def kubernetes_version() -> str | None:
    """The kube-apiserver version pinned in hack/controlplane/go.mod (None outside a checkout)."""
    try:
        text = GO_MOD.read_text()
    except FileNotFoundError:
        return None
    match = re.search(r"^\s*k8s\.io/kubernetes (v1\.\d+\.\d+)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def _complete(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED)


def find() -> Path:
    """The directory holding the binaries: ``$TOKENPOOL_BIN_DIR``, else the cache entry for the
    pinned Kubernetes version. Raises :class:`BinariesNotFound` with what to run."""
    explicit = os.environ.get("TOKENPOOL_BIN_DIR")
    if explicit:
        if _complete(Path(explicit)):
            return Path(explicit)
        raise BinariesNotFound(f"TOKENPOOL_BIN_DIR={explicit} lacks executable {' / '.join(REQUIRED)}")
    version = kubernetes_version() or "v*"
    candidates = sorted(
        (d for d in (cache_dir() / "bin").glob(f"k8s-{version}-etcd-*") if not d.name.endswith(".partial")),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for candidate in candidates:
        if _complete(candidate):
            return candidate
    building = list((cache_dir() / "bin").glob("*.partial"))
    hint = " (a build seems to be in progress: " + str(building[0]) + ")" if building else ""
    raise BinariesNotFound(
        f"etcd/kube-apiserver {version} not found under {cache_dir() / 'bin'}{hint}. "
        "Build them with `bash hack/build-binaries.sh` (or `make test`, which does), "
        "or set TOKENPOOL_KUBECONFIG to use an existing cluster."
    )


def build() -> Path:
    """Build the binaries if missing (slow the first time) and return their directory."""
    if not BUILD_SCRIPT.exists():
        raise BinariesNotFound(f"{BUILD_SCRIPT} is missing: binaries can only be built from a checkout")
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])
