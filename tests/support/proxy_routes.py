"""Hand-made compiled routes for proxy tests, built only through tokenpool/contract/compiled.py.

``routes_in_cluster`` writes them as the operator would (same names, labels and keys), so the
proxy's watch is tested independently of the operator.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from tokenpool.contract import compiled as contract
from tokenpool.contract.compiled import AllocatedUpstream, UpstreamRoute, UserRoute


def new_personal_token() -> str:
    return secrets.token_hex(32)


def user_route(
    name: str, personal_token: str, upstreams: Sequence[str | tuple[str, int]] = (), **kw: Any
) -> UserRoute:
    allocated = [
        AllocatedUpstream(name=u, priority=1)
        if isinstance(u, str)
        else AllocatedUpstream(name=u[0], priority=u[1])
        for u in upstreams
    ]
    data = {
        "user": name,
        "uid": f"uid-{name}",
        "tokenSha256": contract.hash_personal_token(personal_token),
        "email": f"{name}@example.com",
        "tokenQuota": 3,
        "createdAt": "2026-11-25T10:11:12Z",
        "upstreams": [a.model_dump(by_alias=True) for a in allocated],
        **kw,
    }
    return UserRoute.model_validate(data)


def upstream_route(name: str, endpoint: str, token: str | None = None, **kw: Any) -> UpstreamRoute:
    data = {"name": name, "endpoint": endpoint, "token": token or secrets.token_hex(32), **kw}
    return UpstreamRoute.model_validate(data)


class RoutesInCluster:
    """Create/replace/delete compiled route objects in a namespace of the real API server."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace

    def _meta(self, name: str, route: str) -> kubernetes.client.V1ObjectMeta:
        return kubernetes.client.V1ObjectMeta(name=name, labels={contract.LABEL_ROUTE: route})

    def put_user(self, route: UserRoute) -> None:
        body = kubernetes.client.V1ConfigMap(
            metadata=self._meta(contract.user_route_name(route.user), contract.ROUTE_USER),
            data={contract.USER_ROUTE_KEY: contract.dump(route)},
        )
        self._upsert(self.core.create_namespaced_config_map, self.core.replace_namespaced_config_map, body)

    def put_upstream(self, route: UpstreamRoute) -> None:
        blob = base64.b64encode(contract.dump(route).encode()).decode()
        body = kubernetes.client.V1Secret(
            metadata=self._meta(contract.upstream_route_name(route.name), contract.ROUTE_UPSTREAM),
            data={contract.UPSTREAM_ROUTE_KEY: blob},
        )
        self._upsert(self.core.create_namespaced_secret, self.core.replace_namespaced_secret, body)

    def delete_user(self, user: str) -> None:
        self.core.delete_namespaced_config_map(contract.user_route_name(user), self.namespace)

    def delete_upstream(self, name: str) -> None:
        self.core.delete_namespaced_secret(contract.upstream_route_name(name), self.namespace)

    def _upsert(self, create: Any, replace: Any, body: Any) -> None:
        try:
            create(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            replace(body.metadata.name, self.namespace, body)
