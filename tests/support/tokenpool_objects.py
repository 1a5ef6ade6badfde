"""Creating and reading tokenpool custom resources and compiled objects in one test namespace."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from tokenpool.contract import compiled as c

PLURALS = {
    c.KIND_USER: c.PLURAL_USER,
    c.KIND_UPSTREAM: c.PLURAL_UPSTREAM,
    c.KIND_ALLOCATION: c.PLURAL_ALLOCATION,
}
GOOD_CREDENTIAL = "0123456789abcdef" * 4


class Pool:
    """The tokenpool objects of one namespace, through the real API server."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.core = kubernetes.client.CoreV1Api(api)

    # --- custom resources -----------------------------------------------------------------
    def create(self, kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
        body = {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}
        return self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, PLURALS[kind], body)

    def user(self, name: str, **spec: Any) -> dict[str, Any]:
        return self.create(c.KIND_USER, name, {"email": f"{name}@example.com", **spec})

    def token(
        self, name: str, secret: str | None = None, labels: dict[str, str] | None = None, **spec: Any
    ) -> Any:
        ref = {"name": secret or f"{name}-cred"}
        base = {
            "provider": "Augment",
            "endpoint": "https://d1.api.augmentcode.com/",
            "credentialSecretRef": ref,
        }
        return self.create(c.KIND_UPSTREAM, name, {**base, **spec}, labels=labels or {})

    def credential(self, name: str, value: str = GOOD_CREDENTIAL, key: str = "token") -> None:
        body = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name), string_data={key: value}
        )
        try:
            self.core.create_namespaced_secret(self.ns, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, self.ns, body)

    def allocation(self, name: str, user: str, **spec: Any) -> dict[str, Any]:
        return self.create(c.KIND_ALLOCATION, name, {"user": user, **spec})

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, PLURALS[kind], name)

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            self.ns,
            PLURALS[kind],
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(
            c.GROUP,
            c.VERSION,
            self.ns,
            PLURALS[kind],
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def delete(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, PLURALS[kind], name)

    def condition(self, kind: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        for cond in (self.get(kind, name).get("status") or {}).get("conditions") or ():
            if cond["type"] == type_:
                return dict(cond)
        return None

    def reason(self, kind: str, name: str, type_: str = "Ready") -> str | None:
        cond = self.condition(kind, name, type_)
        return cond["reason"] if cond else None

    # --- compiled objects -------------------------------------------------------------------
    def secret(self, name: str) -> kubernetes.client.V1Secret | None:
        try:
            return self.core.read_namespaced_secret(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def secret_value(self, name: str, key: str = "token") -> str | None:
        s = self.secret(name)
        if s is None or not s.data or key not in s.data:
            return None
        return base64.b64decode(s.data[key]).decode()

    def personal_token(self, user: str) -> str | None:
        return self.secret_value(c.personal_token_secret_name(user))

    def configmap(self, name: str) -> kubernetes.client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def user_route(self, user: str) -> c.UserRoute | None:
        raw = self.secret_value(c.user_route_name(user), c.USER_ROUTE_KEY)
        return c.parse_user_route({c.USER_ROUTE_KEY: raw}) if raw is not None else None

    def upstream_route(self, token: str) -> c.UpstreamRoute | None:
        raw = self.secret_value(c.upstream_route_name(token), c.UPSTREAM_ROUTE_KEY)
        return c.parse_upstream_route({c.UPSTREAM_ROUTE_KEY: raw}) if raw is not None else None

    def upstream_names(self, user: str) -> list[str] | None:
        route = self.user_route(user)
        return [u.name for u in route.upstreams] if route else None

    def granted(self, allocation: str) -> list[str]:
        return list((self.get(c.KIND_ALLOCATION, allocation).get("status") or {}).get("tokens") or [])

    def events(self, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events about object ``name``."""
        items = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return [(e.type, e.reason, e.message) for e in items]

    def dump(self) -> str:
        """Everything tokenpool in the namespace, for failure messages."""
        out = {
            kind: self.custom.list_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, p)["items"]
            for kind, p in PLURALS.items()
        }
        return json.dumps(out, indent=1, default=str)[:20000]
