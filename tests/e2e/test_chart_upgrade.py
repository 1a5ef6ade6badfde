"""A helm release's life on a real API server: install, upgrade, CRDs out of the release and
back, uninstall — the CRDs and the users' personal tokens survive every step.

No kubelet runs here, so no pod ever starts; helm runs without --wait. The operator runs as a
process authenticated as the ServiceAccount the release created, with the RBAC the release
created, and issues the personal token the upgrade must not disturb.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.helm import CHART, Helm, source_crds
from tests.support.operator_fixtures import OperatorProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.dev.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RELEASE = "tp"
OPERATOR_SA = f"{RELEASE}-tokenpool-operator"
PROXY = f"{RELEASE}-tokenpool-proxy"


def _crd_uids(api: kubernetes.client.ApiClient) -> dict[str, str]:
    ext = kubernetes.client.ApiextensionsV1Api(api)
    names = [c["metadata"]["name"] for c in source_crds()]
    return {name: str(ext.read_custom_resource_definition(name).metadata.uid) for name in names}  # type: ignore[union-attr]


def _proxy_replicas(api: kubernetes.client.ApiClient, ns: str) -> int | None:
    try:
        spec = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(PROXY, ns).spec
        return spec.replicas if spec else None
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_release_lifecycle_keeps_crds_and_personal_tokens(
    helm: Helm,
    control_plane: ControlPlane,
    kube_api: kubernetes.client.ApiClient,
    namespace: str,
    pool: Pool,
    sa_kubeconfig: Callable[[str, str], str],
    tmp_path: Path,
) -> None:
    h = helm.with_kubeconfig(Path(control_plane.kubeconfig))
    ns = namespace

    def upgrade(*sets: str) -> str:
        args = [a for s in sets for a in ("--set", s)]
        return h.run("upgrade", RELEASE, str(CHART), "-n", ns, "--reuse-values", *args).stdout

    # The session's CRDs were applied with kubectl: the release adopts them, as a user moving from
    # plain manifests to the chart would.
    installed = h.run("upgrade", "--install", RELEASE, str(CHART), "-n", ns, "--take-ownership").stdout
    assert f"kubectl get secret -n {ns} admin-personal-token" in installed, "NOTES tell how to read the token"
    assert _proxy_replicas(kube_api, ns) == 2
    crds = _crd_uids(kube_api)

    operator = OperatorProcess(ns, sa_kubeconfig(ns, OPERATOR_SA), tmp_path, {})
    try:
        operator.wait_ready(timeout=90)
        pool.user("alice")
        token = wait_for(lambda: pool.personal_token("alice"), timeout=60, what="alice's personal token")

        upgrade("proxy.replicas=3", "operator.maxTokenQuota=12")
        assert _proxy_replicas(kube_api, ns) == 3, "the upgrade was applied"
        assert _crd_uids(kube_api) == crds, "CRDs were not recreated"
        operator.restart(wait=False)  # what the Recreate rollout does to the operator
        operator.wait_ready(timeout=90)
        operator.wait_idle(timeout=60)
        assert pool.personal_token("alice") == token
    finally:
        operator.stop()

    # Taking the CRDs out of the release must not delete them (helm.sh/resource-policy: keep).
    upgrade("crds.enabled=false")
    assert _crd_uids(kube_api) == crds
    # Back in the release, then uninstalled with it: kept again.
    upgrade("crds.enabled=true")
    h.run("uninstall", RELEASE, "-n", ns)
    assert _proxy_replicas(kube_api, ns) is None, "the release's objects are gone"
    assert _crd_uids(kube_api) == crds
    assert pool.personal_token("alice") == token
