"""``python -m tests.support.cluster [LOG_DIR]``: start the test cluster, print its kubeconfig, and keep it
up until Ctrl-C / SIGTERM, then tear it down and report what (if anything) is left on the host.

For looking around by hand (``kubectl --kubeconfig …``) and for the test that interrupts a
running cluster and checks the host is as it was.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from tests.support.cluster.artifacts import build_images, node_binaries
from tests.support.cluster.components import Binaries
from tests.support.cluster.node import LocalCluster
from tests.support.cluster.project import binaries


def main() -> int:
    # Component logs outlive the cluster (for reading after Ctrl-C): given, or a new temp dir.
    logs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="tp-cluster-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    images = build_images()
    cluster = LocalCluster.launch(Binaries(binaries.find(), node_binaries()), images, logs)
    print(
        f"READY kubeconfig={cluster.kubeconfig} image={images.image} logs={logs} timings={cluster.timings}",
        flush=True,
    )
    try:
        signal.pause()  # until SIGINT/SIGTERM: the cleanup handler stops the cluster first
    except KeyboardInterrupt:
        return 130
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
