"""Fixtures for tests against a real kube-apiserver (see README "Testing").

One control plane per test session: started from the cached binaries, or, when
``TOKENPOOL_KUBECONFIG`` is set, an existing cluster (e.g. kind) used as it is.
When a test that uses it fails, the control-plane log tails are added to its report.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from kubernetes.client.rest import ApiException

from tests.support.kubectl import run_kubectl
from tests.support.waiting import wait_for
from tokenpool.dev import binaries, kubeconfig
from tokenpool.dev.controlplane import ControlPlane
from tokenpool.kube.client import KubeClient

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
SA_TOKEN_SECONDS = 3600

_active: list[ControlPlane] = []


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    external = os.environ.get("TOKENPOOL_KUBECONFIG")
    if external:
        plane = ControlPlane.from_kubeconfig(external)
    else:
        try:
            bin_dir = binaries.find()
        except binaries.BinariesNotFound as exc:
            pytest.fail(str(exc), pytrace=False)
        started = time.monotonic()
        plane = ControlPlane.launch(bin_dir)
        print(f"\ncontrol plane {plane.server} ready in {time.monotonic() - started:.1f}s")
    _active.append(plane)
    yield plane
    _active.remove(plane)
    plane.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    with kubernetes.config.new_client_from_config(config_file=control_plane.kubeconfig) as client:
        yield client


@pytest.fixture
async def kube_client(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """The project's own async client (:mod:`tokenpool.kube.client`) as the admin."""
    async with KubeClient.from_environment(control_plane.kubeconfig) as client:
        yield client


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``kubectl(*args, kubeconfig=None, input=None, check=True)``: admin kubeconfig by default."""

    def run(
        *args: str, kubeconfig: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(*args, kubeconfig=kubeconfig or control_plane.kubeconfig, input=input, check=check)

    return run


def _crd_names(paths: list[Path]) -> list[str]:
    names = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
    return names


def _established(api: kubernetes.client.ApiextensionsV1Api, name: str) -> bool:
    crd = api.read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def crds_applied(
    kube_api: kubernetes.client.ApiClient, kubectl: Callable[..., subprocess.CompletedProcess[str]]
) -> list[str]:
    """Server-side apply every YAML in crds/ and wait until each CRD is Established.

    Returns the CRD names (empty while crds/ has no manifests)."""
    paths = sorted(p for p in CRDS_DIR.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not paths:
        return []
    args = [arg for p in paths for arg in ("-f", str(p))]
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=tokenpool-tests", *args)
    api = kubernetes.client.ApiextensionsV1Api(kube_api)
    names = _crd_names(paths)
    for name in names:
        wait_for(functools.partial(_established, api, name), timeout=30, what=f"CRD {name} Established")
    return names


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "test"


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, kube_api: kubernetes.client.ApiClient, crds_applied: list[str]
) -> Iterator[str]:
    """A fresh namespace ``t-<test name>-<random>``; deleted afterwards (without waiting: no
    controller-manager here finishes namespace deletion)."""
    name = f"t-{_slug(request.node.name, 48)}-{secrets.token_hex(3)}"
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _ensure_service_account(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> None:
    body = kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name))
    try:
        core.create_namespaced_service_account(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise


@pytest.fixture
def sa_kubeconfig(
    control_plane: ControlPlane, kube_api: kubernetes.client.ApiClient, tmp_path: Path
) -> Callable[[str, str], str]:
    """``sa_kubeconfig(namespace, name) -> path``: a kubeconfig acting as that ServiceAccount
    (created if missing) with a real token from the TokenRequest API."""
    core = kubernetes.client.CoreV1Api(kube_api)

    def make(namespace: str, name: str) -> str:
        _ensure_service_account(core, namespace, name)
        request = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=SA_TOKEN_SECONDS)
        )
        status = core.create_namespaced_service_account_token(name, namespace, request).status
        assert status is not None and status.token, f"TokenRequest for {namespace}/{name} returned no token"
        return kubeconfig.write(
            tmp_path / f"sa-{namespace}-{name}.kubeconfig",
            control_plane.server,
            control_plane.ca_pem,
            f"system:serviceaccount:{namespace}:{name}",
            token=status.token,
        )

    return make


@pytest.fixture
def sa_api_client(
    sa_kubeconfig: Callable[[str, str], str],
) -> Generator[Callable[[str, str], kubernetes.client.ApiClient], None, None]:
    """``sa_api_client(namespace, name) -> ApiClient`` acting as that ServiceAccount."""
    clients: list[kubernetes.client.ApiClient] = []

    def make(namespace: str, name: str) -> kubernetes.client.ApiClient:
        client = kubernetes.config.new_client_from_config(config_file=sa_kubeconfig(namespace, name))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    """On failure of a test using the control plane, attach the control-plane log tails."""
    report = yield
    if report.failed and _active and "control_plane" in getattr(item, "fixturenames", ()):
        report.sections.append(("control-plane logs (last 200 lines each)", _active[0].log_tail(200)))
    return report
