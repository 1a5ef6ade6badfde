"""A small async Kubernetes client on aiohttp: the handful of calls the reconcilers make.

The official ``kubernetes`` package is synchronous (a thread per call) and its typed models cost
more than the reconcile itself at thousands of objects; Kopf already brings aiohttp. Credentials
come from the same places ``kubectl`` and Kopf use (in-cluster service account or KUBECONFIG),
loaded through the ``kubernetes`` package's config loaders. Errors carry the status code and the
API's reason, never a request body (which may hold a Secret).
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from tokenpool.contract import compiled as c

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {reason}")
        self.status = status


def load_configuration() -> k8s_client.Configuration:
    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=cfg)
    return cfg


def _ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def cr_path(ns: str, plural: str, name: str = "", sub: str = "") -> str:
    path = f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{ns}/{plural}"
    return path + (f"/{quote(name)}" if name else "") + (f"/{sub}" if sub else "")


def core_path(ns: str, plural: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/{plural}" + (f"/{quote(name)}" if name else "")


class Kube:
    def __init__(self, cfg: k8s_client.Configuration, limit: int = 16) -> None:
        self._cfg = cfg
        self._host = cfg.host.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=_ssl_context(cfg), limit=limit),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async def close(self) -> None:
        await self._session.close()

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        auth = self._cfg.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers["Authorization"] = str(auth["value"])
        return headers

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any] | None:
        """The decoded answer, or None for 404. Other errors raise :class:`KubeError`."""
        data = orjson.dumps(body) if body is not None else None
        async with self._session.request(
            method, self._host + path, data=data, headers=self._headers(content_type)
        ) as resp:
            raw = await resp.read()
            if resp.status == 404:
                return None
            if resp.status >= 400:
                reason = resp.reason or ""
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                    reason = orjson.loads(raw).get("reason", reason)
                raise KubeError(resp.status, str(reason))
            return orjson.loads(raw) if raw else {}

    async def get(self, path: str) -> dict[str, Any] | None:
        return await self.request("GET", path)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("POST", path, body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("PATCH", path, body, MERGE_PATCH)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)
