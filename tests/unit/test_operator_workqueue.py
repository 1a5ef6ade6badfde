"""The work queue: coalescing, one run per key at a time, priorities and retries."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from tokenpool_operator.workqueue import WorkQueue

from tests.support.waiting import async_wait_for


async def test_keys_coalesce_and_never_run_twice_at_once() -> None:
    running: set[Hashable] = set()
    runs: list[Hashable] = []
    overlap = False
    gate = asyncio.Event()

    async def handler(key: Hashable) -> None:
        nonlocal overlap
        overlap = overlap or key in running
        running.add(key)
        await gate.wait()
        runs.append(key)
        running.discard(key)

    q = WorkQueue(handler, workers=3)
    for _ in range(5):
        q.add("a")  # queued five times, runs once
    q.start()
    await async_wait_for(lambda: _true(running == {"a"}), what="a running")
    q.add("a")  # changed while running: runs again afterwards, not concurrently
    q.add("a")
    gate.set()
    await async_wait_for(lambda: _true(q.pending() == 0 and len(runs) == 2), what="two runs of a")
    assert runs == ["a", "a"] and not overlap
    await q.stop()


async def test_lower_priority_values_run_first() -> None:
    order: list[Hashable] = []

    async def handler(key: Hashable) -> None:
        order.append(key)

    q = WorkQueue(handler, workers=1, priority=lambda key: 0 if str(key).startswith("token") else 1)
    for key in ("user-1", "token-1", "user-2", "token-2"):
        q.add(key)
    q.start()
    await async_wait_for(lambda: _true(len(order) == 4), what="all processed")
    assert order == ["token-1", "token-2", "user-1", "user-2"]
    await q.stop()


async def test_failures_are_retried_and_reported() -> None:
    attempts = 0

    async def handler(key: Hashable) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("boom")

    q = WorkQueue(handler, workers=1)
    q.add("k")
    q.start()
    await async_wait_for(lambda: _true(q.stats()["failing"] == 1), what="failure recorded")
    await async_wait_for(lambda: _true(attempts == 2), timeout=5, what="retried after backoff")
    await async_wait_for(lambda: _true(q.stats()["failing"] == 0), what="failure cleared")
    assert q.alive()
    await q.stop()


async def _true(value: bool) -> bool:
    return value
