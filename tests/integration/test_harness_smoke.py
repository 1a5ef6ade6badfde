"""The test control plane is a real Kubernetes API server: each test fails against a fake."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.waiting import wait_for
from tokenpool.dev import binaries
from tokenpool.dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_configmap_round_trip(
    kube_api: kubernetes.client.ApiClient, namespace: str, kubectl: Kubectl
) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="greeting"), data={"hello": "wörld", "n": "1"}
    )
    created = core.create_namespaced_config_map(namespace, body)
    assert created.metadata.uid and created.metadata.resource_version

    assert core.read_namespaced_config_map("greeting", namespace).data == {"hello": "wörld", "n": "1"}
    # The same object through kubectl (a second, independent client).
    out = kubectl("get", "configmap", "greeting", "-n", namespace, "-o", "json").stdout
    assert json.loads(out)["metadata"]["uid"] == created.metadata.uid


def test_version_comes_from_the_pinned_build(
    kube_api: kubernetes.client.ApiClient, control_plane: ControlPlane
) -> None:
    version = kubernetes.client.VersionApi(kube_api).get_code()
    assert re.fullmatch(r"v1\.\d+\.\d+", version.git_version), version.git_version
    if control_plane.embedded:
        assert version.git_version == binaries.kubernetes_version() == "v1.37.2"
        assert (version.major, version.minor) == ("1", "37")


@pytest.fixture
def widget_crd(kube_api: kubernetes.client.ApiClient) -> Iterator[tuple[str, str]]:
    """A tiny test-only CRD with a schema and a CEL rule; yields (group, plural)."""
    group = f"h{secrets.token_hex(4)}.harness.tokenpool.io"
    api = kubernetes.client.ApiextensionsV1Api(kube_api)
    spec_schema = {
        "type": "object",
        "required": ["min", "max"],
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}],
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
                }
            ],
        },
    }
    api.create_custom_resource_definition(crd)

    def established() -> bool:
        status = api.read_custom_resource_definition(f"widgets.{group}").status
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    wait_for(established, timeout=30, what="test CRD Established")
    yield group, "widgets"
    api.delete_custom_resource_definition(f"widgets.{group}")


def test_crd_schema_and_cel_rule_are_enforced(
    kube_api: kubernetes.client.ApiClient, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, plural = widget_crd
    custom = kubernetes.client.CustomObjectsApi(kube_api)

    def widget(name: str, spec: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

    # The CRD may be Established a moment before its REST endpoint serves: retry the valid create.
    wait_for(
        lambda: custom.create_namespaced_custom_object(
            group, "v1", namespace, plural, widget("ok", {"min": 1, "max": 2})
        ),
        timeout=10,
        what="creating a valid Widget",
    )
    with pytest.raises(ApiException) as cel:
        custom.create_namespaced_custom_object(
            group, "v1", namespace, plural, widget("bad", {"min": 3, "max": 2})
        )
    assert cel.value.status == 422
    assert "min must not exceed max" in cel.value.body

    with pytest.raises(ApiException) as schema:
        custom.create_namespaced_custom_object(
            group, "v1", namespace, plural, widget("typo", {"min": "x", "max": 2})
        )
    assert schema.value.status == 422
    assert "spec.min" in schema.value.body

    names = [
        o["metadata"]["name"]
        for o in custom.list_namespaced_custom_object(group, "v1", namespace, plural)["items"]
    ]
    assert names == ["ok"]


def test_service_account_needs_rbac(
    kube_api: kubernetes.client.ApiClient,
    namespace: str,
    sa_api_client: Callable[[str, str], kubernetes.client.ApiClient],
    kubectl: Kubectl,
    sa_kubeconfig: Callable[[str, str], str],
) -> None:
    as_reader = kubernetes.client.CoreV1Api(sa_api_client(namespace, "reader"))
    with pytest.raises(ApiException) as denied:
        as_reader.list_namespaced_config_map(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "cm-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    # The RBAC authorizer reads roles from an informer: the grant takes effect within moments.
    listed = wait_for(lambda: as_reader.list_namespaced_config_map(namespace), timeout=10, what="RBAC grant")
    assert listed.items is not None
    # Still only what the Role grants: secrets stay forbidden, also through kubectl.
    result = kubectl(
        "get", "secrets", "-n", namespace, kubeconfig=sa_kubeconfig(namespace, "reader"), check=False
    )
    assert result.returncode != 0 and "forbidden" in result.stderr.lower()


def test_watch_sees_an_update(kube_api: kubernetes.client.ApiClient, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(name="watched"), data={"v": "1"}
        ),
    )
    core.patch_namespaced_config_map("watched", namespace, {"data": {"v": "2"}})

    # A watch from the creation's resourceVersion must deliver exactly the later change.
    watch = kubernetes.watch.Watch()
    events = []
    for event in watch.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=created.metadata.resource_version,
        timeout_seconds=10,
    ):
        events.append((event["type"], event["object"].metadata.name, event["object"].data))
        watch.stop()
    assert events == [("MODIFIED", "watched", {"v": "2"})]


def test_from_kubeconfig_uses_the_cluster_and_never_stops_it(control_plane: ControlPlane) -> None:
    external = ControlPlane.from_kubeconfig(control_plane.kubeconfig)
    assert (external.server, external.ca_pem, external.embedded) == (
        control_plane.server,
        control_plane.ca_pem,
        False,
    )
    external.stop()
    with kubernetes.config.new_client_from_config(config_file=external.kubeconfig) as client:
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(client).list_namespace().items]
    assert "default" in names


CHILD = """
import json, sys, threading
from tokenpool.dev.controlplane import ControlPlane
plane = ControlPlane.launch()
print(json.dumps({"pids": list(plane.pids().values()), "workdir": str(plane.workdir)}), flush=True)
threading.Event().wait()
"""


def _gone(pid: int) -> bool:
    """True when no process (or only a zombie awaiting its reaper) has this pid."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_owner_leaves_no_orphans(sig: signal.Signals, tmp_path: Path) -> None:
    if os.environ.get("TOKENPOOL_KUBECONFIG"):
        pytest.skip("uses an existing cluster: no control-plane processes of our own")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "child.err").open("w"),
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"child died before the control plane was up:\n{(tmp_path / 'child.err').read_text()}"
        started = json.loads(line)
        assert len(started["pids"]) == 2 and not any(_gone(p) for p in started["pids"])

        child.send_signal(sig)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    for pid in started["pids"]:
        wait_for(lambda pid=pid: _gone(pid), timeout=15, what=f"control-plane pid {pid} gone")
    assert not Path(started["workdir"]).exists()
    # The child still dies of the signal (SIGINT surfaces as KeyboardInterrupt, exit status 1 or -2).
    assert child.returncode != 0
