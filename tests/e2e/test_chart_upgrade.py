"""A helm release's life on a real API server: install, upgrade, CRDs out of the release,
uninstall — the CRDs and the users' personal-token Secrets survive every step.

No kubelet runs here, so no pod ever starts; helm runs without --wait and the assertions are on
the objects the API server holds.
"""

from __future__ import annotations

import base64
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.helm import CHART, Helm, source_crds
from tokenpool import contract
from tokenpool.devtools import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _crd_uids(api: kubernetes.client.ApiClient) -> dict[str, str]:
    ext = kubernetes.client.ApiextensionsV1Api(api)
    return {
        c["metadata"]["name"]: ext.read_custom_resource_definition(c["metadata"]["name"]).metadata.uid
        for c in source_crds()
    }


def _make_user_with_token(api: kubernetes.client.ApiClient, ns: str, name: str) -> str:
    """A PoolUser and its personal-token Secret, owned by it exactly as the operator writes it."""
    user = kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        contract.GROUP,
        contract.VERSION,
        ns,
        contract.PLURAL_USER,
        {
            "apiVersion": contract.API_VERSION,
            "kind": contract.KIND_USER,
            "metadata": {"name": name},
            "spec": {},
        },
    )
    token = "ab" * 32
    owner = kubernetes.client.V1OwnerReference(
        api_version=contract.API_VERSION,
        kind=contract.KIND_USER,
        name=name,
        uid=user["metadata"]["uid"],
        controller=True,
    )
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(
            name=contract.personal_token_secret_name(name), owner_references=[owner]
        ),
        string_data={contract.PERSONAL_TOKEN_KEY: token},
    )
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(ns, secret)
    return token


def _personal_token(api: kubernetes.client.ApiClient, ns: str, name: str) -> str:
    secret = kubernetes.client.CoreV1Api(api).read_namespaced_secret(
        contract.personal_token_secret_name(name), ns
    )
    return base64.b64decode(secret.data[contract.PERSONAL_TOKEN_KEY]).decode()


def _deployment_replicas(api: kubernetes.client.ApiClient, ns: str, name: str) -> int | None:
    try:
        return int(kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, ns).spec.replicas)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_release_lifecycle_keeps_crds_and_personal_tokens(
    helm: Helm, control_plane: ControlPlane, kube_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    h = helm.with_kubeconfig(Path(control_plane.kubeconfig))
    release, ns = "tp", namespace
    proxy = f"{release}-tokenpool-proxy"
    # The session's CRDs were applied with kubectl: the release adopts them, as a user switching
    # from plain manifests to the chart would.
    h.run("upgrade", "--install", release, str(CHART), "-n", ns, "--take-ownership")
    assert _deployment_replicas(kube_api, ns, proxy) == 2
    crds = _crd_uids(kube_api)
    token = _make_user_with_token(kube_api, ns, "alice")

    h.run("upgrade", release, str(CHART), "-n", ns, "--reuse-values", "--set", "proxy.replicas=3")
    assert _deployment_replicas(kube_api, ns, proxy) == 3, "the upgrade was applied"
    assert _crd_uids(kube_api) == crds, "CRDs were not recreated"
    assert _personal_token(kube_api, ns, "alice") == token

    # Taking the CRDs out of the release must not delete them (helm.sh/resource-policy: keep).
    h.run("upgrade", release, str(CHART), "-n", ns, "--reuse-values", "--set", "crds.enabled=false")
    assert _crd_uids(kube_api) == crds
    assert _personal_token(kube_api, ns, "alice") == token

    # Back in the release, then uninstalled with it: kept again.
    h.run("upgrade", release, str(CHART), "-n", ns, "--reuse-values", "--set", "crds.enabled=true")
    h.run("uninstall", release, "-n", ns)
    assert _deployment_replicas(kube_api, ns, proxy) is None, "the release's objects are gone"
    assert _crd_uids(kube_api) == crds
    assert _personal_token(kube_api, ns, "alice") == token
