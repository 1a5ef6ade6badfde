"""The cluster itself: a Ready node on the test's own addresses, Services routed by kube-proxy,
images present without any pull."""

from __future__ import annotations

import ipaddress

import kubernetes
import pytest

from tests.support.cluster_fixtures import ClusterUnderTest

pytestmark = pytest.mark.cluster

TEST_RANGE = ipaddress.ip_network("198.18.0.0/15")


def test_node_is_ready_on_the_test_range(cluster: ClusterUnderTest) -> None:
    with cluster.api_client() as api:
        nodes = kubernetes.client.CoreV1Api(api).list_node().items
        assert nodes, "no node registered"
        for node in nodes:
            conditions = {c.type: c.status for c in node.status.conditions}
            assert conditions["Ready"] == "True", conditions
        if cluster.local is None:
            return  # kind: its own addresses
        [node] = nodes
        internal = next(a.address for a in node.status.addresses if a.type == "InternalIP")
        assert ipaddress.ip_address(internal) in TEST_RANGE
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        svc = kubernetes.client.CoreV1Api(api).read_namespaced_service("kubernetes", "default")
        assert ipaddress.ip_address(svc.spec.cluster_ip) in TEST_RANGE


def test_images_are_there_without_a_pull(cluster: ClusterUnderTest) -> None:
    if cluster.local is None:
        pytest.skip("kind: the workflow loads the image with `kind load`")
    listed = cluster.local.crictl("images", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert cluster.image in listed.stdout
    assert cluster.local.images.pause in listed.stdout
