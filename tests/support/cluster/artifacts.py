"""Finding what hack/ built for the cluster tier: node binaries and images.

Like the control-plane binaries, the node binaries are never built by a test run (minutes on
2 cores, and a run must not race a build under way): ``make test`` / ``hack/bootstrap.sh`` build
them. The images are different: they are the product under test, so they are (re)built from
this checkout whenever it changed (hack/cluster/build-images.sh; seconds when it did not).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HACK = REPO / "hack" / "cluster"
NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy", "crictl", "pause")


class ArtifactsMissing(RuntimeError):
    """Something the cluster tier needs is not there; the message says what to run."""


def cache_dir() -> Path:
    return Path(os.environ.get("TOKENPOOL_CACHE") or Path.home() / ".cache" / "tokenpool")


def node_binaries() -> Path:
    """The newest complete ``$TOKENPOOL_CACHE/node/k8s-*`` directory."""
    candidates = sorted(
        (d for d in (cache_dir() / "node").glob("k8s-*") if not d.name.endswith(".partial")),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for candidate in candidates:
        if all(os.access(candidate / n, os.X_OK) for n in NODE_BINARIES):
            return candidate
    raise ArtifactsMissing(
        f"kubelet & co. not found under {cache_dir() / 'node'}: run "
        "`bash hack/cluster/build-node-binaries.sh` (or `make test`, which does), "
        "or set TOKENPOOL_KUBECONFIG to use an existing cluster."
    )


@dataclass(frozen=True)
class Images:
    image: str  # repository:tag of tokenpool's image
    image_tar: Path
    image_bytes: int
    pause: str
    pause_tar: Path

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[1]


def build_images(timeout: float = 1800) -> Images:
    """Run hack/cluster/build-images.sh (its progress goes to our stderr) and read its summary."""
    result = subprocess.run(
        ["bash", str(HACK / "build-images.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise ArtifactsMissing(
            f"hack/cluster/build-images.sh exited {result.returncode} (its output is above)"
        )
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return Images(
        image=values["TOKENPOOL_IMAGE"],
        image_tar=Path(values["TOKENPOOL_IMAGE_TAR"]),
        image_bytes=int(values.get("TOKENPOOL_IMAGE_BYTES") or 0),
        pause=values["TOKENPOOL_PAUSE_IMAGE"],
        pause_tar=Path(values["TOKENPOOL_PAUSE_TAR"]),
    )
