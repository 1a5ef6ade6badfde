"""Feeds the route index from the API server: list, then watch, per kind; relist on any gap.

The compiled ConfigMaps (users) and Secrets (upstreams) labelled ``tokenpool.io/route`` in the
proxy's namespace are read with plain list/watch calls of the project's Kubernetes client
(:mod:`tokenpool.kube.client`, on aiohttp like the rest of the proxy: no client threads). A
full list *replaces* that kind in the index, so objects deleted while the watch was down
disappear at the resync instead of being served stale. When the API server is unreachable the
index is left as it is and the proxy keeps serving it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import ValidationError

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, KubeError, WatchExpired, core_path

from .index import RouteIndex

log = logging.getLogger("tokenpool.proxy.watch")


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
        kube: KubeClient,
        namespace: str,
        kind: Kind,
        watch_timeout_s: int = 300,
        retry_s: float = 1.0,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.path = core_path(namespace, kind.resource)
        self.selector = {"labelSelector": f"{contract.LABEL_ROUTE}={kind.route}"}
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s

    def _parse(self, obj: dict[str, Any]) -> Any | None:
        name = obj.get("metadata", {}).get("name", "?")
        try:
            return self.kind.parse(obj)
        except (KeyError, ValueError, ValidationError, TypeError) as exc:
            # A malformed route is not served (fail closed); say which, never its content.
            log.warning("ignoring malformed %s %s: %s", self.kind.resource, name, type(exc).__name__)
            return None

    async def list(self) -> str:
        body = await self.kube.list(self.path, self.selector)
        routes = []
        for obj in body["items"]:
            route = self._parse(obj)
            if route is not None:
                routes.append((obj["metadata"]["name"], route))
        self.kind.replace(routes)
        return str(body["metadata"]["resourceVersion"])

    async def watch(self, rv: str) -> str:
        async for event in self.kube.watch(self.path, rv, self.selector, self.watch_timeout_s):
            rv = self._event(event, rv)
        return rv

    def _event(self, event: dict[str, Any], rv: str) -> str:
        etype, obj = event.get("type"), event.get("object") or {}
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
                log.info("synced %s (%s)", self.kind.resource, self.selector["labelSelector"])
                while True:
                    rv = await self.watch(rv)
            except WatchExpired:
                log.info("watch of %s expired; relisting", self.kind.resource)
            except (KubeError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.warning(
                    "watch of %s failed (%s); retrying, serving the last known routes",
                    self.kind.resource,
                    type(exc).__name__,
                )
                await asyncio.sleep(self.retry_s)
