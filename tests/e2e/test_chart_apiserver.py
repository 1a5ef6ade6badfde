"""Every object the chart renders is accepted by a real kube-apiserver (server-side dry-run).

The API server validates what helm cannot: field names and types of every kind, CRD schemas
(structural, CEL), RBAC rule shapes, label and name syntax.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.helm import ALL_FEATURES_VALUES, Helm, to_yaml_stream
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _monitoring_crd(kind: str) -> dict[str, Any]:
    """A Prometheus Operator CRD (ServiceMonitor, PodMonitor), reduced to what the API server needs
    to accept the chart's object (no schema: the real CRD's validation is the Prometheus
    Operator's business, not the chart's)."""
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def _established(api: kubernetes.client.ApiextensionsV1Api, name: str) -> bool:
    status = api.read_custom_resource_definition(name).status
    conditions = (status and status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def monitoring_crds(kube_api: kubernetes.client.ApiClient) -> list[str]:
    api = kubernetes.client.ApiextensionsV1Api(kube_api)
    names = []
    for kind in ("ServiceMonitor", "PodMonitor"):
        crd = _monitoring_crd(kind)
        name = crd["metadata"]["name"]
        try:
            api.create_custom_resource_definition(cast(Any, crd))
        except ApiException as exc:
            if exc.status != 409:
                raise
        wait_for(functools.partial(_established, api, name), timeout=30, what=f"CRD {name} Established")
        names.append(name)
    return names


@pytest.mark.parametrize("values", [None, ALL_FEATURES_VALUES], ids=["defaults", "all-features"])
def test_every_rendered_object_is_accepted(
    helm: Helm,
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    monitoring_crds: list[str],
    values: Path | None,
) -> None:
    rendered = helm.template(*([values] if values else []), namespace=namespace)
    out = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=helm",
        "-o",
        "name",
        "-f",
        "-",
        input=to_yaml_stream(rendered),
    )
    accepted = set(out.stdout.split())
    expected = {f"{_resource(m['apiVersion'], m['kind'])}/{m['metadata']['name']}" for m in rendered}
    assert accepted == expected


def _resource(api_version: str, kind: str) -> str:
    """kubectl's ``-o name`` prefix: lower-case kind, then the API group when there is one."""
    group = api_version.rpartition("/")[0]
    return f"{kind.lower()}.{group}" if group else kind.lower()
