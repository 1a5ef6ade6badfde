"""Reading and writing the status of PoolUsers and UpstreamTokens: the status loop's only I/O.

A protocol so the flush logic is tested against the real API server and, for its retry paths,
against a scripted store; :class:`KubeStatusStore` is the real one. Reads are a list + watch of
both kinds into the replica's :class:`~.status_cache.StatusCache` (one long-lived request per
kind; a relist only when the watch lost its place), plus a GET of one object when a write found
the cache stale. Writes are JSON merge patches of the ``/status`` subresource carrying
``metadata.resourceVersion``: the API server applies one only if the object did not change since
it was read (else 409), which makes read-add-write safe between replicas and against the
operator's own status writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, PLURAL_UPSTREAM, PLURAL_USER
from tokenpool.kube.client import MERGE_PATCH, KubeClient, KubeError, WatchExpired, cr_path

PLURALS = {KIND_USER: PLURAL_USER, KIND_UPSTREAM: PLURAL_UPSTREAM}
log = logging.getLogger(__name__)


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class Deleted(Exception):
    """The object no longer exists (HTTP 404)."""


@dataclass(frozen=True)
class Stored:
    name: str
    resource_version: str
    status: dict[str, Any]
    uid: str = ""


class StatusSink(Protocol):
    """Where the watch puts what it sees (:class:`~.status_cache.StatusCache`)."""

    def put(self, kind: str, stored: Stored, own_write: bool = False) -> None: ...

    def delete(self, kind: str, name: str, resource_version: str = "") -> None: ...

    def retain(self, kind: str, names: set[str]) -> None: ...


class StatusStore(Protocol):
    async def get(self, kind: str, name: str) -> Stored: ...

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored: ...

    async def watch(self, sink: StatusSink, first_round: asyncio.Event) -> None:
        """Keep ``sink`` up to date until cancelled; set ``first_round`` once every kind was
        listed or failed to be listed once."""
        ...


def _stored(obj: Any) -> Stored:
    meta = obj["metadata"]
    return Stored(meta["name"], meta["resourceVersion"], obj.get("status") or {}, meta.get("uid", ""))


class KubeStatusStore:
    """Over the proxy's Kubernetes client (its timeouts bound a hung API server's hold on the
    flush, and on the final flush at shutdown)."""

    def __init__(
        self, kube: KubeClient, namespace: str, watch_timeout_s: int = 300, retry_s: float = 1.0
    ) -> None:
        self._kube = kube
        self._ns = namespace
        self._watch_timeout_s = watch_timeout_s
        self._retry_s = retry_s

    async def get(self, kind: str, name: str) -> Stored:
        body = await self._kube.get(cr_path(self._ns, PLURALS[kind], name))
        if body is None:
            raise Deleted(name)
        return _stored(body)

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored:
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            body = await self._kube.request(
                "PATCH", cr_path(self._ns, PLURALS[kind], name, "status"), patch, MERGE_PATCH
            )
        except KubeError as exc:
            if exc.status == 409:
                raise Conflict(name) from None
            raise
        if body is None:
            raise Deleted(name)
        return _stored(body)

    async def watch(self, sink: StatusSink, first_round: asyncio.Event) -> None:
        pending = {KIND_USER, KIND_UPSTREAM}

        def attempted(kind: str) -> None:
            pending.discard(kind)
            if not pending:
                first_round.set()

        await asyncio.gather(*(self._reflect(kind, sink, attempted) for kind in (KIND_USER, KIND_UPSTREAM)))

    async def _reflect(self, kind: str, sink: StatusSink, attempted: Callable[[str], None]) -> None:
        """List (page by page, so a big namespace never sits in memory whole), then watch from
        the list's version; list again only when the watch lost its place or failed."""
        path = cr_path(self._ns, PLURALS[kind])
        failures = 0
        while True:
            try:
                rv = await self._list(kind, path, sink)
                attempted(kind)
                while True:
                    async for event in self._kube.watch(path, rv, timeout_s=self._watch_timeout_s):
                        rv = self._event(kind, sink, event, rv)
                    failures = 0  # a watch call ran its course: the API server is fine
            except WatchExpired:
                log.info("watch of %s expired; listing again", PLURALS[kind])
            except (KubeError, aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
                attempted(kind)
                failures += 1
                delay = min(30.0, self._retry_s * 2 ** min(failures - 1, 5)) * (0.5 + random.random())  # noqa: S311
                log.warning(
                    "watch of %s failed (%s); retrying in %.1fs", PLURALS[kind], type(exc).__name__, delay
                )
                await asyncio.sleep(delay)

    async def _list(self, kind: str, path: str, sink: StatusSink) -> str:
        rv, names = "", set()
        async for page in self._kube.list_pages(path):
            rv = rv or str(page["metadata"]["resourceVersion"])
            for item in page.get("items") or ():
                stored = _stored(item)
                names.add(stored.name)
                sink.put(kind, stored)
        sink.retain(kind, names)
        return rv

    @staticmethod
    def _event(kind: str, sink: StatusSink, event: dict[str, Any], rv: str) -> str:
        etype, obj = event.get("type"), event.get("object") or {}
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or rv)
        if etype in ("ADDED", "MODIFIED"):
            sink.put(kind, _stored(obj))
        elif etype == "DELETED":
            sink.delete(kind, meta["name"], version)
        return version
