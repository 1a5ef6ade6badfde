"""Hand-made compiled routes for proxy tests, built only through tokenpool/contract/compiled.py.

``routes_in_cluster`` writes them as the operator would (same names, labels and keys, Secrets
with a controller ownerReference to the PoolUser / UpstreamToken they name, which it creates when
missing), so the proxy's watch is tested independently of the operator.
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
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace = namespace

    def owner(self, kind: str, name: str, endpoint: str = "https://d1.example/") -> dict[str, Any]:
        """The custom resource a route belongs to (created when missing, as an admin would)."""
        plural = contract.PLURAL_USER if kind == contract.KIND_USER else contract.PLURAL_UPSTREAM
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                contract.GROUP, contract.VERSION, self.namespace, plural, name
            )
            return obj
        except ApiException as exc:
            if exc.status != 404:
                raise
        if kind == contract.KIND_USER:
            spec: dict[str, Any] = {"displayName": name}
        else:
            spec = {
                "provider": "Augment",
                "endpoint": endpoint,
                "credentialSecretRef": {"name": f"{name}-cred"},
            }
        body = {"apiVersion": contract.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            contract.GROUP, contract.VERSION, self.namespace, plural, body
        )
        return created

    def _secret(
        self, name: str, route: str, kind: str, owner_name: str, key: str, doc: str, **kw: Any
    ) -> Any:
        owner = self.owner(kind, owner_name, **kw)
        ref = kubernetes.client.V1OwnerReference(
            api_version=contract.API_VERSION,
            kind=kind,
            name=owner_name,
            uid=owner["metadata"]["uid"],
            controller=True,
        )
        return kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(
                name=name, labels={contract.LABEL_ROUTE: route}, owner_references=[ref]
            ),
            data={key: base64.b64encode(doc.encode()).decode()},
        )

    def put_user(self, route: UserRoute) -> None:
        body = self._secret(
            contract.user_route_name(route.user),
            contract.ROUTE_USER,
            contract.KIND_USER,
            route.user,
            contract.USER_ROUTE_KEY,
            contract.dump(route),
        )
        self._upsert(body)

    def put_upstream(self, route: UpstreamRoute) -> None:
        body = self._secret(
            contract.upstream_route_name(route.name),
            contract.ROUTE_UPSTREAM,
            contract.KIND_UPSTREAM,
            route.name,
            contract.UPSTREAM_ROUTE_KEY,
            contract.dump(route),
            endpoint=route.endpoint,
        )
        self._upsert(body)

    def delete_user(self, user: str) -> None:
        self.core.delete_namespaced_secret(contract.user_route_name(user), self.namespace)

    def delete_upstream(self, name: str) -> None:
        self.core.delete_namespaced_secret(contract.upstream_route_name(name), self.namespace)

    def _upsert(self, body: Any) -> None:
        try:
            self.core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(body.metadata.name, self.namespace, body)
