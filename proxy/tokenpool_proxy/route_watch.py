"""Feeds the route index from the API server: list, then watch, per kind; relist on any gap.

Watched in the proxy's namespace: the compiled route Secrets (labelled ``tokenpool.io/route`` =
``user`` / ``upstream``). The uids of the PoolUsers and UpstreamTokens (a route is served only
when its controller ownerReference carries its resource's uid, see index.py) come from the
status watch of the same objects (usage/status_watch.py), which feeds the index too. Plain
list/watch calls of the project's Kubernetes client (:mod:`tokenpool.kube.client`, on aiohttp
like the rest of the proxy: no client threads). A full list *replaces* that kind in the index, so
objects deleted while the watch was down disappear at the resync instead of being served stale.

A watch loop never dies: any failure is logged (by kind, never with object contents) and retried
with exponential backoff and jitter; the index is left as it is and served meanwhile. Each loop
reports when it last had a complete view (:attr:`Watcher.failing_since`): ``/readyz`` turns false
once one has been failing longer than ``TOKENPOOL_PROXY_ROUTES_STALE_SECONDS`` and true again after
the relist.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, WatchExpired, core_path

from .index import RouteIndex

log = logging.getLogger("tokenpool.proxy.watch")


@dataclass(frozen=True)
class Kind:
    """One watched kind: route Secrets of users or of upstreams."""

    name: str  # for logs: "user routes", "poolusers", ...
    path: Callable[[str], str]  # namespace → collection path
    selector: dict[str, str]
    put: Callable[[str, Any], None]
    delete: Callable[[str], None]
    replace: Callable[[list[tuple[str, Any]]], None]
    parse: Callable[[dict[str, Any]], Any]


def _decoded(obj: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def _user(obj: dict[str, Any]) -> tuple[contract.UserRoute, str]:
    route = contract.parse_user_route(_decoded(obj))
    return route, _claim(obj, contract.KIND_USER, route.user, contract.user_route_name(route.user))


def _upstream(obj: dict[str, Any]) -> tuple[contract.UpstreamRoute, str]:
    route = contract.parse_upstream_route(_decoded(obj))
    return route, _claim(obj, contract.KIND_UPSTREAM, route.name, contract.upstream_route_name(route.name))


def _claim(obj: dict[str, Any], kind: str, name: str, expected_object: str) -> str:
    """The owner uid a route object claims, or "" when its shape is not the operator's."""
    if (obj.get("metadata") or {}).get("name") != expected_object:
        return ""
    return contract.controller_uid(obj, kind, name)


def kinds(index: RouteIndex) -> list[Kind]:
    def route_kind(label: str, put: Any, delete: Any, replace: Any, parse: Any) -> Kind:
        return Kind(
            f"{label} routes",
            lambda ns: core_path(ns, "secrets"),
            {"labelSelector": f"{contract.LABEL_ROUTE}={label}"},
            lambda obj_name, claimed: put(obj_name, *claimed),
            delete,
            lambda items: replace([(n, *claimed) for n, claimed in items]),
            parse,
        )

    return [
        route_kind(contract.ROUTE_USER, index.put_user, index.delete_user, index.replace_users, _user),
        route_kind(
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
        max_retry_s: float = 30.0,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.path = kind.path(namespace)
        self.selector = kind.selector
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s
        self.max_retry_s = max(retry_s, max_retry_s)
        # Monotonic time of the first failure since the last complete view; None while healthy.
        self.failing_since: float | None = time.monotonic()

    def stale_for(self, now: float | None = None) -> float:
        """Seconds this kind has been without a working list/watch (0 while it works)."""
        if self.failing_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self.failing_since

    def _parse(self, obj: dict[str, Any]) -> Any | None:
        name = obj.get("metadata", {}).get("name", "?")
        try:
            return self.kind.parse(obj)
        except (KeyError, ValueError, ValidationError, TypeError) as exc:
            # A malformed route is not served (fail closed); say which, never its content.
            log.warning("ignoring malformed %s %s: %s", self.kind.name, name, type(exc).__name__)
            return None

    async def list(self) -> str:
        body = await self.kube.list(self.path, self.selector)
        items = []
        for obj in body["items"]:
            parsed = self._parse(obj)
            if parsed is not None:
                items.append((obj["metadata"]["name"], parsed))
        self.kind.replace(items)
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
            parsed = self._parse(obj)
            if parsed is None:
                self.kind.delete(name)
            else:
                self.kind.put(name, parsed)
        elif etype == "DELETED" and name:
            self.kind.delete(name)
        return str(meta.get("resourceVersion") or rv)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                rv = await self.list()
                self.failing_since, failures = None, 0
                log.info("synced %s", self.kind.name)
                while True:
                    rv = await self.watch(rv)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info("watch of %s expired; relisting", self.kind.name)
            except Exception as exc:  # any failure: the loop must outlive it
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                failures += 1
                delay = min(self.max_retry_s, self.retry_s * 2 ** min(failures - 1, 10))
                delay *= 0.5 + random.random()  # noqa: S311 - jitter, not cryptography
                log.warning(
                    "watch of %s failed (%s); retrying in %.1fs, serving the last known routes",
                    self.kind.name,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
