"""Usage tests' fixtures: PoolUser/UpstreamToken objects in the real API server and their status.

``usage_objects(namespace)`` -> :class:`UsageObjects` with ``user(name)``, ``upstream(name,
endpoint)``, ``status(kind, name)``, ``usage(kind, name)`` and ``set_status(kind, name, status)``
(acting as the operator would on its own status fields).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from tokenpool.contract.compiled import GROUP, KIND_UPSTREAM, KIND_USER, PLURAL_UPSTREAM, PLURAL_USER, VERSION
from tokenpool.contract.status_fields import Usage

PLURALS = {KIND_USER: PLURAL_USER, KIND_UPSTREAM: PLURAL_UPSTREAM}


class UsageObjects:
    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace = namespace

    def _create(self, kind: str, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], body)

    def user(self, name: str, **spec: Any) -> None:
        self._create(KIND_USER, name, {"displayName": name, **spec})

    def upstream(self, name: str, endpoint: str, **spec: Any) -> None:
        self._create(
            KIND_UPSTREAM,
            name,
            {
                "provider": "Augment",
                "endpoint": endpoint,
                "credentialSecretRef": {"name": f"{name}-cred"},
                **spec,
            },
        )

    def status(self, kind: str, name: str) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name
        )
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def usage(self, kind: str, name: str) -> Usage:
        return Usage.model_validate(self.status(kind, name).get("usage") or {})

    def set_status(self, kind: str, name: str, status: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            PLURALS[kind],
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )


@pytest.fixture
def usage_objects(request: pytest.FixtureRequest) -> Callable[[str], UsageObjects]:
    def make(namespace: str) -> UsageObjects:
        return UsageObjects(request.getfixturevalue("kube_api"), namespace)

    return make
