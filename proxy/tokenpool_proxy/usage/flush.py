"""Batched write-back of usage and health into the custom resources' status.

Once per interval (and a last time on shutdown) the flusher:

1. takes this replica's pending usage deltas and health news;
2. lists PoolUsers and UpstreamTokens (two reads: fresh resourceVersions for the writes, and the
   other replicas' counts and verdicts for limits and the balancer);
3. for each object with something to write: adds the delta to the listed ``status.usage``
   (:func:`~.merge.apply_delta`), merges the health news, and patches ``/status`` with the
   resourceVersion as precondition. On 409 it re-reads that object and re-applies (bounded);
   only a confirmed write removes the delta. A failure puts it back for the next interval.

So each object gets at most one successful write per interval, no increment is lost while the
process lives, and none is counted twice (a retried delta is re-added to the document as it is
now, never to the one it failed against). The one hole: a write the API server applied whose
answer never arrived (a timeout) is given back and written again, i.e. counted twice; the client
timeout is long against the API server's latency, and docs/usage.md says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.contract.status_fields import Health, Usage, to_wire

from .clock import Clock
from .counters import Delta, ObjectKey, UsageBook
from .health_status import HealthSync, merge_health, same
from .merge import apply_delta
from .store import Conflict, Deleted, StatusStore, Stored

log = logging.getLogger(__name__)


def _usage(stored: Stored) -> Usage:
    return Usage.model_validate(stored.status.get("usage") or {})


def _health(stored: Stored) -> Health | None:
    raw = stored.status.get("health")
    return Health.model_validate(raw) if raw else None


class Flusher:
    def __init__(
        self,
        book: UsageBook,
        store: StatusStore,
        clock: Clock,
        interval_s: float = 10.0,
        health: HealthSync | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.book = book
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.health = health
        self.max_attempts = max_attempts
        self.writes = 0  # successful status writes: what the write-rate bound counts
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
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
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
        """Read every object's status once, writing nothing: a new replica starts its limits and
        health from the cluster's figures instead of zero."""
        async with self._lock:
            self._read_back(await self._list(), {})

    async def _list(self) -> dict[str, dict[str, Stored]]:
        return {kind: {s.name: s for s in await self.store.list(kind)} for kind in (KIND_USER, KIND_UPSTREAM)}

    async def _flush(self) -> None:
        now = self.clock.now()
        news = self.health.news() if self.health else {}
        deltas = self.book.take()
        try:
            listed = await self._list()
        except Exception:
            self.failures += 1
            raise
        keys = set(deltas) | {(KIND_UPSTREAM, name) for name in news}
        results = await asyncio.gather(
            *(
                self._write(
                    key,
                    listed[key[0]].get(key[1]),
                    deltas.get(key),
                    news.get(key[1]) if key[0] == KIND_UPSTREAM else None,
                    now,
                )
                for key in keys
            )
        )
        written = dict(zip(keys, results, strict=True))
        self._read_back(listed, written)
        if all(r is not False for r in results):
            self.last_success = time.monotonic()

    def _read_back(self, listed: dict[str, dict[str, Stored]], written: dict[ObjectKey, Any]) -> None:
        for key in [k for k in self.book.seen if k[1] not in listed[k[0]] and k not in written]:
            self.book.drop(key)  # deleted since: forget its figures
        for kind, objects in listed.items():
            for name, stored in objects.items():
                if (kind, name) in written:
                    continue
                try:
                    self.book.observe((kind, name), _usage(stored))
                except ValidationError:
                    log.warning("ignoring unreadable status.usage of %s %s", kind, name)
        if self.health is not None:
            remote: dict[str, Health | None] = {}
            for name, stored in listed[KIND_UPSTREAM].items():
                result = written.get((KIND_UPSTREAM, name))
                try:
                    remote[name] = _health(result if isinstance(result, Stored) else stored)
                except ValidationError:
                    log.warning("ignoring unreadable status.health of UpstreamToken %s", name)
            self.health.observe(remote, self.clock.now())

    async def _write(
        self, key: ObjectKey, stored: Stored | None, delta: Delta | None, news: Health | None, now: datetime
    ) -> Stored | bool | None:
        """Write one object: the stored result, None when it is gone, False when it failed."""
        kind, name = key
        for _ in range(self.max_attempts):
            try:
                if stored is None:
                    stored = await self.store.get(kind, name)
                status: dict[str, Any] = {}
                usage = None
                if delta is not None:
                    usage = apply_delta(_usage(stored), delta, now, per_upstream=kind == KIND_USER)
                    status["usage"] = to_wire(usage)
                health = None
                if news is not None:
                    current = _health(stored)
                    health = merge_health(current, news, now)
                    if current is not None and same(current, health):
                        health = None  # nothing new for the cluster (e.g. a verdict adopted from it)
                        if self.health is not None:
                            self.health.written(name, current)
                    else:
                        # With nulls: a merge patch deletes the keys that no longer apply.
                        status["health"] = health.model_dump(by_alias=True, mode="json")
                if not status:
                    return stored
                result = await self.store.patch_status(kind, name, stored.resource_version, status)
            except Conflict:
                self.conflicts += 1
                stored = None
                continue
            except Deleted:
                log.info("%s %s is gone; dropping its unwritten usage", kind, name)
                self.book.drop(key)
                return None
            except Exception:
                log.exception("status write of %s %s failed; kept for the next interval", kind, name)
                break
            self.writes += 1
            if usage is not None:
                self.book.commit(key, usage)
            if health is not None and self.health is not None:
                self.health.written(name, health)
            return result
        self.failures += 1
        self.book.give_back(key)
        return False
