"""Batched write-back of usage and health into the custom resources' status.

Once per interval (and a last time on shutdown) the flusher:

1. takes this replica's pending usage deltas and health news;
2. for each object with something to write: adds the delta to its ``status.usage`` as the
   replica's :class:`~.status_cache.StatusCache` holds it (fed by a watch: no list, no read
   when the cache is current), merges the health news, and patches ``/status`` with the cached
   resourceVersion as precondition. On 409 (the cache was behind) it reads that object and
   re-applies (bounded); only a confirmed write removes the delta. A failure puts it back for
   the next interval;
3. applies the health verdicts other replicas wrote (from the cache) to the balancer.

So the API server sees one write per changed object per interval and nothing else (an idle
replica sends nothing beyond its watches); no increment is lost while the process lives, and
none is counted twice (a retried delta is re-added to the document as it is now, never to the
one it failed against). The one hole: a write the API server applied whose answer never arrived
(a timeout) is given back and written again, i.e. counted twice; the client timeout is long
against the API server's latency, and docs/usage.md says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.contract.status_fields import Health, Usage, to_wire

from .clock import Clock
from .counters import Delta, ObjectKey, UsageBook
from .health_status import HealthSync, merge_health, same
from .merge import apply_delta
from .status_cache import StatusCache, newer
from .store import Conflict, Deleted, StatusStore, Stored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Base:
    """The document a write adds to, and the version it must still be at."""

    resource_version: str
    usage: Usage
    health: Health | None

    @classmethod
    def read(cls, kind: str, stored: Stored) -> _Base:
        raw = stored.status.get("health") if kind == KIND_UPSTREAM else None
        return cls(
            stored.resource_version,
            Usage.model_validate(stored.status.get("usage") or {}),
            Health.model_validate(raw) if raw else None,
        )


def _news(news: dict[str, Health], key: ObjectKey) -> Health | None:
    return news.get(key[1]) if key[0] == KIND_UPSTREAM else None


class Flusher:
    def __init__(
        self,
        book: UsageBook,
        store: StatusStore,
        clock: Clock,
        interval_s: float = 10.0,
        health: HealthSync | None = None,
        max_attempts: int = 5,
        cache: StatusCache | None = None,
        concurrency: int = 8,
    ) -> None:
        self.book = book
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.health = health
        self.max_attempts = max_attempts
        self.cache = cache if cache is not None else StatusCache()
        self.concurrency = concurrency  # writes in flight at once (below the client's connections)
        self.writes = 0  # successful status writes: what the write-rate bound counts
        self.changed = 0  # objects a flush had something to write for (the bound, summed)
        self.conflicts = 0
        self.failures = 0
        self.last_success: float | None = None  # monotonic time of the last complete flush
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def stop(self) -> None:
        """Stop the periodic loop (never mid-write) and flush what is left: the graceful exit."""
        self._stop.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _run(self) -> None:
        # A random phase: replicas started together would otherwise flush in the same instants
        # and race for the same objects (each race a refused write and a retry).
        wait = self.interval_s * random.random()  # noqa: S311 - not a secret
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            wait = self.interval_s
            if self._stop.is_set():
                return
            try:
                await self.flush()
            except Exception:
                log.exception("usage flush failed; counts are kept for the next interval")

    # -- one flush ------------------------------------------------------------------------------
    async def flush(self) -> None:
        async with self._lock:
            try:
                await self._flush()
            finally:
                # Whatever happened (an error, a cancellation), nothing stays "being written":
                # what was not confirmed is pending again for the next flush.
                for key in list(self.book.flushing):
                    self.book.give_back(key)

    async def prime(self) -> None:
        """Adopt the health verdicts in the cache, writing nothing: a new replica starts its
        balancer from the cluster's figures (its limits read the cache directly)."""
        async with self._lock:
            self._observe_health()

    async def _flush(self) -> None:
        now = self.clock.now()
        news = self.health.news() if self.health else {}
        deltas = self.book.take()
        keys = list(set(deltas) | {(KIND_UPSTREAM, name) for name in news})
        self.changed += len(keys)
        # A few writes at a time: each request is on the wire as soon as it starts, so the
        # client's timeout measures the API server, not a queue for connections here (a write
        # that timed out after the API server applied it would be retried: counted twice).
        gate = asyncio.Semaphore(self.concurrency)

        async def one(key: ObjectKey) -> bool:
            async with gate:
                return await self._write(key, deltas.get(key), _news(news, key), now)

        results = await asyncio.gather(*(one(key) for key in keys))
        self._observe_health()
        if all(results):
            self.last_success = time.monotonic()

    def _observe_health(self) -> None:
        """The other replicas' verdicts to the balancer — once the watch listed every token: a
        token missing from what the balancer is shown counts as deleted."""
        if self.health is not None and KIND_UPSTREAM in self.cache.synced:
            self.health.observe(self.cache.healths(), self.clock.now())

    async def _base(self, key: ObjectKey, behind: str | None) -> _Base:
        """The document to add to: the cached one; after a conflict with version ``behind``, the
        watch's newer news of the object if it has some, else a fresh read."""
        kind, name = key
        if behind is None:
            entry = self.cache.get(key)
            if entry is not None:
                return _Base(entry.resource_version, entry.usage(), entry.health)
        else:
            parked = self.cache.parked(key)
            if parked is not None and newer(parked.resource_version, behind):
                return _Base.read(kind, parked)
        return _Base.read(kind, await self.store.get(kind, name))

    async def _write(self, key: ObjectKey, delta: Delta | None, news: Health | None, now: datetime) -> bool:
        """Write one object; False when it failed (the delta waits for the next flush). Watch
        news about the object waits while its write is in flight (:meth:`StatusCache.hold`)."""
        self.cache.hold((key,))
        try:
            return await self._attempts(key, delta, news, now)
        finally:
            self.cache.release(key)

    async def _attempts(
        self, key: ObjectKey, delta: Delta | None, news: Health | None, now: datetime
    ) -> bool:
        kind, name = key
        behind: str | None = None  # the version a write was refused at (409)
        for _ in range(self.max_attempts):
            try:
                base = await self._base(key, behind)
                status: dict[str, Any] = {}
                usage = None
                if delta is not None:
                    usage = apply_delta(base.usage, delta, now, per_upstream=kind == KIND_USER)
                    status["usage"] = to_wire(usage)
                health = None
                if news is not None:
                    health = merge_health(base.health, news, now)
                    if base.health is not None and same(base.health, health):
                        health = None  # nothing new for the cluster (e.g. a verdict adopted from it)
                        if self.health is not None:
                            self.health.written(name, base.health)
                    else:
                        # With nulls: a merge patch deletes the keys that no longer apply.
                        status["health"] = health.model_dump(by_alias=True, mode="json")
                if not status:
                    return True
                result = await self.store.patch_status(kind, name, base.resource_version, status)
            except Conflict:
                self.conflicts += 1
                behind = base.resource_version
                continue
            except Deleted:
                log.info("%s %s is gone; dropping its unwritten usage", kind, name)
                self.book.drop(key)
                self.cache.delete(kind, name)
                return True
            except Exception:
                log.exception("status write of %s %s failed; kept for the next interval", kind, name)
                break
            # One step, no await: the delta leaves the book as the document holding it enters
            # the cache, so limits never count it twice or not at all.
            self.writes += 1
            self.cache.put(kind, result, own_write=True)
            if usage is not None:
                self.book.commit(key)
            if health is not None and self.health is not None:
                self.health.written(name, health)
            return True
        self.failures += 1
        self.book.give_back(key)
        return False
