"""Feeds the route index from the API server: list, then watch, per kind; relist on any gap.

The compiled ConfigMaps (users) and Secrets (upstreams) labelled ``tokenpool.io/route`` in the
proxy's namespace are read with plain list/watch calls over the one aiohttp stack the proxy
already has (no extra client threads). A full list *replaces* that kind in the index, so objects
deleted while the watch was down disappear at the resync instead of being served stale. When the
API server is unreachable the index is left as it is and the proxy keeps serving it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError

from tokenpool.contract import compiled as contract

from .index import RouteIndex

log = logging.getLogger("tokenpool.proxy.watch")


@dataclass(frozen=True)
class ApiServer:
    host: str
    ssl: ssl.SSLContext | bool
    auth: Callable[[], str | None]  # current Authorization header value (tokens may rotate)


def load_api_server(kubeconfig: str = "") -> ApiServer:
    """kubeconfig path, else in-cluster service account, else $KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    else:
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException:
            config.load_kube_config(client_configuration=cfg)
    ctx: ssl.SSLContext | bool
    if cfg.host.startswith("https"):
        ctx = (
            ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            if cfg.ssl_ca_cert
            else ssl.create_default_context()
        )
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = False

    def auth() -> str | None:
        value = cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    return ApiServer(cfg.host.rstrip("/"), ctx, auth)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


@dataclass(frozen=True)
class Kind:
    """One watched kind: ConfigMaps of users or Secrets of upstreams."""

    resource: str  # configmaps | secrets
    route: str  # label value
    put: Callable[[str, Any], None]
    delete: Callable[[str], None]
    replace: Callable[[list[tuple[str, Any]]], None]
    parse: Callable[[dict[str, Any]], Any]


def _user(obj: dict[str, Any]) -> contract.UserRoute:
    return contract.parse_user_route(obj.get("data") or {})


def _upstream(obj: dict[str, Any]) -> contract.UpstreamRoute:
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return contract.parse_upstream_route(data)


def kinds(index: RouteIndex) -> list[Kind]:
    return [
        Kind(
            "configmaps", contract.ROUTE_USER, index.put_user, index.delete_user, index.replace_users, _user
        ),
        Kind(
            "secrets",
            contract.ROUTE_UPSTREAM,
            index.put_upstream,
            index.delete_upstream,
            index.replace_upstreams,
            _upstream,
        ),
    ]


class Watcher:
    def __init__(
        self,
        api: ApiServer,
        session: aiohttp.ClientSession,
        namespace: str,
        kind: Kind,
        watch_timeout_s: int = 300,
        retry_s: float = 1.0,
    ) -> None:
        self.api = api
        self.session = session
        self.kind = kind
        self.url = f"{api.host}/api/v1/namespaces/{namespace}/{kind.resource}"
        self.selector = f"{contract.LABEL_ROUTE}={kind.route}"
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s

    def _headers(self) -> dict[str, str]:
        token = self.api.auth()
        return {"Authorization": token} if token else {}

    def _parse(self, obj: dict[str, Any]) -> Any | None:
        name = obj.get("metadata", {}).get("name", "?")
        try:
            return self.kind.parse(obj)
        except (KeyError, ValueError, ValidationError, TypeError) as exc:
            # A malformed route is not served (fail closed); say which, never its content.
            log.warning("ignoring malformed %s %s: %s", self.kind.resource, name, type(exc).__name__)
            return None

    async def list(self) -> str:
        params = {"labelSelector": self.selector}
        async with self.session.get(
            self.url, params=params, headers=self._headers(), ssl=self.api.ssl
        ) as resp:
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message="list failed"
                )
            body = orjson.loads(await resp.read())
        routes = []
        for obj in body.get("items") or ():
            route = self._parse(obj)
            if route is not None:
                routes.append((obj["metadata"]["name"], route))
        self.kind.replace(routes)
        return str(body["metadata"]["resourceVersion"])

    async def watch(self, rv: str) -> str:
        params = {
            "labelSelector": self.selector,
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout_s),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.watch_timeout_s + 30)
        async with self.session.get(
            self.url, params=params, headers=self._headers(), ssl=self.api.ssl, timeout=timeout
        ) as resp:
            if resp.status == 410:
                raise Gone()
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message="watch failed"
                )
            async for line in resp.content:
                if line.strip():
                    rv = self._event(orjson.loads(line), rv)
        return rv

    def _event(self, event: dict[str, Any], rv: str) -> str:
        etype, obj = event.get("type"), event.get("object") or {}
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise aiohttp.ClientError(f"watch error: {obj.get('message')}")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if etype in ("ADDED", "MODIFIED") and name:
            route = self._parse(obj)
            if route is None:
                self.kind.delete(name)
            else:
                self.kind.put(name, route)
        elif etype == "DELETED" and name:
            self.kind.delete(name)
        return str(meta.get("resourceVersion") or rv)

    async def run(self) -> None:
        while True:
            try:
                rv = await self.list()
                log.info("synced %s (%s)", self.kind.resource, self.selector)
                while True:
                    rv = await self.watch(rv)
            except Gone:
                log.info("watch of %s expired; relisting", self.kind.resource)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.warning(
                    "watch of %s failed (%s); retrying, serving the last known routes",
                    self.kind.resource,
                    type(exc).__name__,
                )
                await asyncio.sleep(self.retry_s)
