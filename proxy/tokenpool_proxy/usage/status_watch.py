"""Keeps the status cache in step with the API server: one long-lived watch per kind.

Each call is a *watch-list* (``sendInitialEvents=true``): the API server first streams every
object as it is now, marks the end of that initial state with a bookmark, then streams the
changes. Unlike a list followed by a plain watch, the whole stream is gzip-compressed by
Kubernetes 1.37 and later (``WatchListCompression``) for a client that accepts it, as aiohttp
does: every change of a PoolUser carries its 31 days of usage, and compressed it is about a
quarter of the bytes. An API server without watch-list (it answers 400/422) gets the classic
list (in pages) and watch instead.

A call ends after ``timeout_s`` (the API server closes it); the next one starts from the last
version seen, and re-sends the initial state, so the timeout is long. When the API server is
unreachable the cache keeps what it has and the calls retry with growing, jittered delays;
:meth:`StatusWatch.stale_for` says for how long (readiness reads it: the route index takes its
owners' uids from this watch).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.kube.client import KubeClient, KubeError, WatchExpired, cr_path

from .store import PLURALS, StatusSink, stored_of

log = logging.getLogger(__name__)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
WATCH_LIST = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
_FAILURES = (KubeError, aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError)


class StatusWatch:
    def __init__(self, kube: KubeClient, namespace: str, timeout_s: int = 1800, retry_s: float = 1.0) -> None:
        self._kube = kube
        self._ns = namespace
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self.watch_list = True  # False once the API server refused a watch-list
        # Per kind: monotonic time of the first failure since the last complete view (None while
        # it works); from the start until the first one.
        self._failing_since: dict[str, float | None] = dict.fromkeys(
            (KIND_USER, KIND_UPSTREAM), time.monotonic()
        )

    def stale_for(self, now: float | None = None) -> float:
        """Seconds the longest-failing kind has been without a working watch (0 while both work)."""
        since = [t for t in self._failing_since.values() if t is not None]
        return ((time.monotonic() if now is None else now) - min(since)) if since else 0.0

    async def run(self, sink: StatusSink, first_round: asyncio.Event) -> None:
        """Until cancelled; ``first_round`` is set once every kind was listed, or failed to be."""
        pending = {KIND_USER, KIND_UPSTREAM}

        def attempted(kind: str) -> None:
            pending.discard(kind)
            if not pending:
                first_round.set()

        await asyncio.gather(*(self._reflect(kind, sink, attempted) for kind in (KIND_USER, KIND_UPSTREAM)))

    async def _reflect(self, kind: str, sink: StatusSink, attempted: Callable[[str], None]) -> None:
        path = cr_path(self._ns, PLURALS[kind])
        rv, failures = "", 0
        while True:
            try:
                if self.watch_list:
                    rv = await self._watch_list(kind, path, sink, rv, attempted)
                else:
                    rv = await self._list(kind, path, sink)
                    self._synced(kind, attempted)
                    rv = await self._watch(kind, path, sink, rv)
                failures = 0  # a call ran its course: the API server is fine
            except WatchExpired:
                log.info("watch of %s expired; starting over", PLURALS[kind])
                rv = ""
            except KubeError as exc:
                if self.watch_list and exc.status in (400, 422):
                    log.info("the API server has no watch-list (%s); using list + watch", exc.status)
                    self.watch_list = False
                    continue
                failures = await self._failed(kind, exc, failures, attempted)
            except _FAILURES as exc:
                failures = await self._failed(kind, exc, failures, attempted)

    def _synced(self, kind: str, attempted: Callable[[str], None]) -> None:
        self._failing_since[kind] = None
        attempted(kind)

    async def _failed(
        self, kind: str, exc: BaseException, failures: int, attempted: Callable[[str], None]
    ) -> int:
        if self._failing_since[kind] is None:
            self._failing_since[kind] = time.monotonic()
        attempted(kind)
        failures += 1
        delay = min(30.0, self._retry_s * 2 ** min(failures - 1, 5)) * (0.5 + random.random())  # noqa: S311
        log.warning("watch of %s failed (%s); retrying in %.1fs", PLURALS[kind], type(exc).__name__, delay)
        await asyncio.sleep(delay)
        return failures

    async def _watch_list(
        self, kind: str, path: str, sink: StatusSink, rv: str, attempted: Callable[[str], None]
    ) -> str:
        """One watch-list call: the objects as of ``rv`` or later, then their changes."""
        names: set[str] | None = set()  # None once the initial state is complete
        async for event in self._kube.watch(path, rv, WATCH_LIST, self._timeout_s):
            etype, obj = event.get("type"), event.get("object") or {}
            meta = obj.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            if names is not None and etype == "ADDED":
                names.add(meta["name"])
            elif names is not None and etype == "BOOKMARK":
                if (meta.get("annotations") or {}).get(INITIAL_EVENTS_END) == "true":
                    sink.retain(kind, names)  # whatever the cache holds beyond was deleted unseen
                    self._synced(kind, attempted)
                    names = None
                continue
            _apply(kind, sink, etype, obj)
        return rv

    async def _list(self, kind: str, path: str, sink: StatusSink) -> str:
        """Page by page: a big namespace never sits in memory whole."""
        rv, names = "", set()
        async for page in self._kube.list_pages(path):
            rv = rv or str(page["metadata"]["resourceVersion"])
            for item in page.get("items") or ():
                stored = stored_of(item)
                names.add(stored.name)
                sink.put(kind, stored)
        sink.retain(kind, names)
        return rv

    async def _watch(self, kind: str, path: str, sink: StatusSink, rv: str) -> str:
        async for event in self._kube.watch(path, rv, timeout_s=self._timeout_s):
            obj = event.get("object") or {}
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
            _apply(kind, sink, event.get("type"), obj)
        return rv


def _apply(kind: str, sink: StatusSink, etype: Any, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    if etype in ("ADDED", "MODIFIED"):
        sink.put(kind, stored_of(obj))
    elif etype == "DELETED":
        sink.delete(kind, meta["name"], str(meta.get("resourceVersion") or ""))
