"""Fixtures of the chart tests: the real helm binary and renderings of the chart."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.helm import ALL_FEATURES_VALUES, Helm, Manifest, one, to_yaml_stream
from tests.support.rbac import Identities
from tokenpool.dev import binaries


def _helm_binary() -> Path:
    """helm from $TOKENPOOL_HELM, else the one hack/build-binaries.sh built, else from PATH.

    Never builds: a test run must not start (or race) the slow build."""
    if explicit := os.environ.get("TOKENPOOL_HELM"):
        return Path(explicit)
    try:
        built = binaries.find() / "helm"
    except binaries.BinariesNotFound as exc:
        found = shutil.which("helm")
        if found:
            return Path(found)
        pytest.fail(f"helm is needed by the chart tests: {exc}", pytrace=False)
    if not built.is_file():
        pytest.fail(f"{built} is missing: run `bash hack/build-binaries.sh`", pytrace=False)
    return built


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """A helm runner with private home folders and no cluster (template, lint)."""
    return Helm(_helm_binary(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def default_render(helm: Helm) -> list[Manifest]:
    """The chart rendered with its default values."""
    return helm.template()


@pytest.fixture(scope="session")
def all_features_render(helm: Helm) -> list[Manifest]:
    """The chart rendered with every optional feature on (ci/all-features-values.yaml)."""
    return helm.template(ALL_FEATURES_VALUES)


RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


@pytest.fixture
def chart_rbac(
    helm: Helm, namespace: str, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> Iterator[Identities]:
    """Apply the chart's RBAC objects (default values) into ``namespace`` for real; afterwards
    remove the cluster-scoped ones (the namespace goes with the test)."""
    rendered = [m for m in helm.template(namespace=namespace) if m["kind"] in RBAC_KINDS]
    kubectl("apply", "-f", "-", input=to_yaml_stream(rendered))
    roles = {m["metadata"]["name"] for m in rendered if m["kind"] == "ClusterRole"}
    yield Identities(
        namespace,
        one(rendered, "ServiceAccount", "operator")["metadata"]["name"],
        one(rendered, "ServiceAccount", "proxy")["metadata"]["name"],
        one(rendered, "ServiceAccount", "console")["metadata"]["name"],
        next(r for r in roles if r.endswith("-admin")),
        next(r for r in roles if r.endswith("-viewer")),
    )
    cluster_scoped = [
        f"{m['kind'].lower()}/{m['metadata']['name']}" for m in rendered if m["kind"].startswith("Cluster")
    ]
    kubectl("delete", "--ignore-not-found", *cluster_scoped)
