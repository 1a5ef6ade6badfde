"""A deduplicating work queue: Kopf handlers only enqueue keys, a few workers reconcile them.

Cross-kind changes fan out (a token turning unhealthy touches every user holding it); queueing
keys instead of reconciling inline coalesces bursts (a key queued twice runs once), never runs one
key on two workers at once (a key changed while running is run again afterwards), and retries
failures with capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from tokenpool_operator.reconcile_metrics import OperatorMetrics

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(
        self,
        handler: Callable[[Hashable], Awaitable[None]],
        workers: int = 4,
        priority: Callable[[Hashable], int] = lambda _: 0,
        metrics: OperatorMetrics | None = None,
        kind: Callable[[Hashable], str] = lambda _: "item",
    ) -> None:
        self._handler = handler
        self.metrics = metrics or OperatorMetrics()
        self._kind = kind  # the metrics label of a key: a small fixed set, never the key itself
        self._workers = workers
        self._priority = priority
        self._seq = 0
        # Lower priority first, then FIFO: dependencies (tokens) are settled before dependants.
        self._queue: asyncio.PriorityQueue[tuple[int, int, Hashable]] = asyncio.PriorityQueue()
        self._queued: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.processed = 0

    def add(self, key: Hashable) -> None:
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._seq += 1
            self._queue.put_nowait((self._priority(key), self._seq, key))

    def pending(self) -> int:
        return len(self._queued) + len(self._running)

    def stats(self) -> dict[str, int]:
        return {"pending": self.pending(), "processed": self.processed, "failing": len(self._failures)}

    def alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"tokenpool-worker-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            *_, key = await self._queue.get()
            self._queued.discard(key)
            self._running.add(key)
            started = time.perf_counter()
            try:
                await self._handler(key)
                self._failures.pop(key, None)
                self.metrics.reconciled(self._kind(key), True, time.perf_counter() - started)
            except Exception as exc:
                self.metrics.reconciled(self._kind(key), False, time.perf_counter() - started)
                n = self._failures[key] = self._failures.get(key, 0) + 1
                delay = min(0.5 * 2 ** (n - 1), 60.0)
                # Only the first line: exception texts must not carry object contents into logs.
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                log.warning("reconcile of %s failed (%s), retry %d in %.1fs", key, why, n, delay)
                asyncio.get_running_loop().call_later(delay, self.add, key)
            finally:
                self.processed += 1
                self._running.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
