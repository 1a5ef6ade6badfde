"""Fixtures of the ``cluster`` tier: a real single-node cluster running the chart's pods.

* ``cluster``: the local cluster (tests/support/cluster/), started once per session from the
  binaries hack/ cached and the images built from this checkout; or, when
  ``TOKENPOOL_KUBECONFIG`` is set, that cluster (e.g. kind) as it is, with the image named by
  ``TOKENPOOL_IMAGE`` already loaded into it. Torn down at the end of the session; anything left
  on the host is an error of the last test.
* ``release``: the chart installed into it with that image (tests/support/cluster/release.py).

Tests marked ``cluster`` run after all others, so the cluster's processes never load the
machine while the timing-sensitive integration tests run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kubernetes
import pytest

from tests.support.cluster.artifacts import ArtifactsMissing, build_images, node_binaries
from tests.support.cluster.components import Binaries
from tests.support.cluster.figures import FIGURES, record_figure
from tests.support.cluster.node import LocalCluster
from tests.support.cluster.project import binaries
from tests.support.helm import Helm

if TYPE_CHECKING:
    from tests.support.cluster.release import Release

_local: list[LocalCluster] = []


@dataclass
class ClusterUnderTest:
    kubeconfig: str
    image: str  # repository:tag every node already has
    local: LocalCluster | None

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    external = os.environ.get("TOKENPOOL_KUBECONFIG")
    if external:
        image = os.environ.get("TOKENPOOL_IMAGE")
        if not image:
            pytest.fail("TOKENPOOL_KUBECONFIG is set: TOKENPOOL_IMAGE must name the image loaded into it")
        yield ClusterUnderTest(external, image, None)
        return
    if os.geteuid() != 0:
        pytest.skip("the cluster tier needs root (containerd, kubelet, host network) or TOKENPOOL_KUBECONFIG")
    try:
        bins = Binaries(binaries.find(), node_binaries())
        started = time.monotonic()
        images = build_images()
        built = time.monotonic() - started
    except (binaries.BinariesNotFound, ArtifactsMissing) as exc:
        pytest.fail(str(exc), pytrace=False)
    started = time.monotonic()
    local = LocalCluster.launch(bins, images, tmp_path_factory.mktemp("cluster-logs"))
    record_figure(
        f"images ready in {built:.1f}s ({images.image}, {images.image_bytes / 1e6:.0f} MB); "
        f"cluster ready in {time.monotonic() - started:.1f}s {local.timings}"
    )
    _local.append(local)
    yield ClusterUnderTest(local.kubeconfig, images.image, local)
    _local.remove(local)
    problems = local.stop()
    assert not problems, "the test cluster left on the host:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def release(
    cluster: ClusterUnderTest, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    # Imported here: it imports the proxy fixtures module, which pytest must load (and rewrite) first.
    from tests.support.cluster.release import install_release

    with install_release(cluster.kubeconfig, cluster.image, helm, tmp_path_factory.mktemp("release")) as rel:
        yield rel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster tier last, and in it the tests that start their own cluster before the session's
    cluster comes up (one cluster per host at a time). Stable order otherwise."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("cluster") is not None,
            "cluster" in getattr(item, "fixturenames", ()),
        )
    )
    if os.environ.get("TOKENPOOL_SKIP_CLUSTER") == "1":
        skip = pytest.mark.skip(reason="TOKENPOOL_SKIP_CLUSTER=1")
        for item in items:
            if item.get_closest_marker("cluster"):
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("cluster tier figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    """On failure of a cluster test, attach the cluster components' log tails."""
    report = yield
    if report.failed and _local and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("test cluster logs (last 60 lines each)", _local[0].log_tail(60)))
    return report
