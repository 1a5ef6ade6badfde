"""Flush logic against an in-memory store with the API server's resourceVersion semantics:
conflicts, concurrent replicas, failures and deletions. The store tells every subscribed status
cache of each change at once (a watch without lag; a stale cache is made by changing an object
behind the caches' back). The same flusher runs against the real API server, with its real
watch, in tests/integration/test_usage_*.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tokenpool_proxy.token_health import HealthBook
from tokenpool_proxy.usage.clock import OffsetClock
from tokenpool_proxy.usage.counters import UsageBook, user_key
from tokenpool_proxy.usage.flush import Flusher
from tokenpool_proxy.usage.health_status import HealthSync
from tokenpool_proxy.usage.limits import Limiter
from tokenpool_proxy.usage.store import Stored

from tests.support.memory_status_store import MemoryStore
from tests.support.usage_counting import served
from tests.support.waiting import async_wait_for
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, Limits
from tokenpool.contract.status_fields import Usage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


def _flusher(store: MemoryStore, book: UsageBook | None = None, **kw: Any) -> Flusher:
    """A replica: a flusher over ``store`` whose status cache follows it."""
    kw.setdefault("interval_s", 0.05)
    kw.setdefault("clock", FixedClock())
    flusher = Flusher(book or UsageBook(), store, **kw)
    store.subscribe(flusher.cache)
    return flusher


def _total(store: MemoryStore, kind: str, name: str) -> int:
    return Usage.model_validate(store.status(kind, name)["usage"]).total.requests


async def test_two_replicas_interleaving_lose_and_double_nothing() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    store.create(KIND_UPSTREAM, "tok")
    a, b = _flusher(store), _flusher(store)
    for _ in range(7):
        served(a.book, "alice", "tok", True, 1, 1, NOW)
    for _ in range(5):
        served(b.book, "alice", "tok", False, 1, 1, NOW)
    # B writes between A's list and A's patch: A's first patch is stale and must be redone.
    store.before_patch.append(b.flush)
    await a.flush()
    assert _total(store, KIND_USER, "alice") == 12 and _total(store, KIND_UPSTREAM, "tok") == 12
    assert a.conflicts >= 1 and a.book.unflushed(user_key("alice")).total.requests == 0
    # A's retry added to B's write as A's watch had shown it meanwhile: no read was needed.
    assert store.gets == 0
    errors = Usage.model_validate(store.status(KIND_USER, "alice")["usage"]).total.errors
    assert errors == 5


async def test_failed_write_keeps_the_counts_for_the_next_flush() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    flusher = _flusher(store)
    served(flusher.book, "alice", None, True, 0, 0, NOW)
    store.fail_patches = 1
    await flusher.flush()
    assert "usage" not in store.status(KIND_USER, "alice") and flusher.failures == 1
    served(flusher.book, "alice", None, True, 0, 0, NOW)
    await flusher.flush()
    assert _total(store, KIND_USER, "alice") == 2 and flusher.writes == 1


async def test_idle_flush_writes_nothing_and_reads_other_replicas_counts() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice", {"usage": {"total": {"requests": 9}}, "conditions": [{"type": "Ready"}]})
    flusher = _flusher(store)
    await flusher.flush()
    assert store.patches == 0 and store.gets == 0
    usage = flusher.cache.usage(user_key("alice"))
    assert usage is not None and usage.total.requests == 9


async def test_operator_fields_are_never_written() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice", {"conditions": [{"type": "Ready"}], "observedGeneration": 3})
    flusher = _flusher(store)
    served(flusher.book, "alice", None, True, 0, 0, NOW)
    seen: list[dict[str, Any]] = []
    original = store.patch_status

    async def spy(kind: str, name: str, rv: str, status: dict[str, Any]) -> Stored:
        seen.append(status)
        return await original(kind, name, rv, status)

    store.patch_status = spy  # type: ignore[method-assign]
    await flusher.flush()
    assert [set(s) for s in seen] == [{"usage"}]
    assert store.status(KIND_USER, "alice")["observedGeneration"] == 3


async def test_deleted_object_drops_its_counts() -> None:
    store = MemoryStore()
    flusher = _flusher(store)
    served(flusher.book, "ghost", None, True, 0, 0, NOW)
    await flusher.flush()
    assert flusher.book.unflushed(user_key("ghost")).total.requests == 0 and not flusher.book.pending


async def test_health_news_is_written_and_other_replicas_verdicts_applied() -> None:
    store = MemoryStore()
    store.create(KIND_UPSTREAM, "tok")
    store.create(KIND_UPSTREAM, "other", {"health": {"state": "Unhealthy", "reason": "Suspended"}})
    balancer = HealthBook()
    flusher = _flusher(store, health=HealthSync(balancer))
    balancer.cooldown("tok", "RateLimited", seconds=60)
    await flusher.flush()
    health = store.status(KIND_UPSTREAM, "tok")["health"]
    assert health["state"] == "CoolingDown" and health["lastError"] == "RateLimited"
    assert balancer.get("other").unhealthy_reason == "Suspended"
    patches = store.patches
    await flusher.flush()
    assert store.patches == patches  # nothing new: no write


async def test_loop_flushes_every_interval_and_stop_flushes_the_rest() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    flusher = _flusher(store, clock=OffsetClock())
    flusher.start()
    served(flusher.book, "alice", None, True, 0, 0, datetime.now(UTC))

    async def written() -> bool:
        return flusher.writes == 1

    await async_wait_for(written, timeout=5, what="the periodic flush")
    assert flusher.last_success is not None
    served(flusher.book, "alice", None, True, 0, 0, datetime.now(UTC))
    flusher.interval_s = 3600  # only stop() can flush this one now
    await flusher.stop()
    assert _total(store, KIND_USER, "alice") == 2


@pytest.mark.parametrize("conflicts", [1, 4])
async def test_conflict_retries_are_bounded(conflicts: int) -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    flusher = _flusher(store, max_attempts=3)
    served(flusher.book, "alice", None, True, 0, 0, NOW)

    async def bump() -> None:  # another writer, whose change the cache has not seen yet
        rv, st = store.objects[(KIND_USER, "alice")]
        store.objects[(KIND_USER, "alice")] = (rv + 1, st)

    real = store.patch_status
    left = [conflicts]

    async def conflicting(kind: str, name: str, rv: str, status: dict[str, Any]) -> Stored:
        if left[0]:
            left[0] -= 1
            await bump()
        return await real(kind, name, rv, status)

    store.patch_status = conflicting  # type: ignore[method-assign]
    await flusher.flush()
    assert store.gets == min(conflicts, 2)  # the watch never showed the other writes: read them
    if conflicts < 3:
        assert _total(store, KIND_USER, "alice") == 1
    else:
        assert "usage" not in store.status(KIND_USER, "alice")
        assert flusher.book.pending[user_key("alice")].total.requests == 1


async def test_prime_reads_the_cluster_figures_without_writing() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice", {"usage": {"daily": [{"date": "2026-11-25", "requests": 4}]}})
    store.create(KIND_UPSTREAM, "tok", {"health": {"state": "Unhealthy", "reason": "Unauthorized"}})
    balancer = HealthBook()
    flusher = _flusher(store, health=HealthSync(balancer))
    await flusher.prime()
    usage = flusher.cache.usage(user_key("alice"))
    assert usage is not None and usage.day("2026-11-25").requests == 4
    assert balancer.get("tok").unhealthy_reason == "Unauthorized"
    assert store.patches == 0


async def test_a_forgotten_verdict_is_readopted_without_rewriting_the_status() -> None:
    """The operator recompiles a route it saw marked Unhealthy; the balancer forgets its verdict
    on any route change. The status keeps it (sticky) and the replica adopts it back, no write."""
    store = MemoryStore()
    store.create(KIND_UPSTREAM, "tok")
    balancer = HealthBook()
    flusher = _flusher(store, health=HealthSync(balancer))
    balancer.unhealthy("tok", "Unauthorized")
    await flusher.flush()
    assert store.patches == 1
    balancer.forget("tok")
    await flusher.flush()
    assert store.patches == 1
    assert balancer.get("tok").unhealthy_reason == "Unauthorized"
    await flusher.flush()
    assert store.patches == 1


async def test_recovery_is_written_without_a_new_error_time() -> None:
    store = MemoryStore()
    store.create(KIND_UPSTREAM, "tok")
    balancer = HealthBook()
    clock = OffsetClock()
    flusher = _flusher(store, clock=clock, health=HealthSync(balancer, clock))
    balancer.cooldown("tok", "UpstreamError", seconds=30)
    await flusher.flush()
    failed_at = store.status(KIND_UPSTREAM, "tok")["health"]["lastErrorAt"]
    clock.offset = timedelta(minutes=5)
    balancer.success("tok")
    await flusher.flush()
    health = store.status(KIND_UPSTREAM, "tok")["health"]
    assert health["state"] == "Healthy" and health["consecutiveFailures"] == 0
    assert health["cooldownUntil"] is None and health["lastErrorAt"] == failed_at
    assert health["lastError"] == "UpstreamError"


async def test_a_cancelled_flush_keeps_every_count() -> None:
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    flusher = _flusher(store)
    served(flusher.book, "alice", None, True, 0, 0, NOW)
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    store.before_patch.append(hang)
    task = asyncio.create_task(flusher.flush())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not flusher.book.flushing and flusher.book.pending[user_key("alice")].total.requests == 1
    await flusher.flush()
    assert _total(store, KIND_USER, "alice") == 1


async def test_limit_overshoot_between_flushes_is_bounded_by_the_other_replicas() -> None:
    """The documented bound: before they exchange counts through the status, N replicas can
    admit up to N x the limit; after one flush each, all of them refuse."""
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    limits = Limits(requests_per_day=5)
    replicas = [_flusher(store), _flusher(store)]
    limiters = [Limiter(r.book, r.cache) for r in replicas]
    admitted = 0
    for replica, limiter in zip(replicas, limiters, strict=True):
        while limiter.admit("alice", limits, NOW) is None:
            served(replica.book, "alice", "tok", True, 0, 0, NOW)
            limiter.release("alice")
            admitted += 1
    assert admitted == 10  # each replica stopped at the limit by itself: overshoot (N-1) x limit
    for replica in replicas:
        await replica.flush()
    await replicas[0].flush()  # the first one now reads what the second wrote
    assert _total(store, KIND_USER, "alice") == 10
    assert all(limiter.check("alice", limits, NOW) is not None for limiter in limiters)
    assert all(limiter.used_today("alice", NOW) == 10 for limiter in limiters)


async def test_a_failed_write_keeps_a_newer_unhealthy_verdict() -> None:
    """A token this replica knew as healthy turns Unhealthy; the write of that news fails. The
    stale status (no health) must not read as "an admin cleared it": the verdict stays, and the
    next flush writes it."""
    store = MemoryStore()
    store.create(KIND_UPSTREAM, "tok")
    balancer = HealthBook()
    flusher = _flusher(store, health=HealthSync(balancer))
    balancer.started("tok")  # the token served traffic: known to this replica as healthy
    balancer.finished("tok")
    await flusher.flush()
    balancer.unhealthy("tok", "Unauthorized")
    store.fail_patches = 1
    await flusher.flush()
    assert flusher.failures == 1 and "health" not in store.status(KIND_UPSTREAM, "tok")
    assert balancer.get("tok").unhealthy_reason == "Unauthorized"
    await flusher.flush()
    assert store.status(KIND_UPSTREAM, "tok")["health"]["state"] == "Unhealthy"


async def test_a_malformed_last_used_at_does_not_stop_the_flushes_of_its_object() -> None:
    store = MemoryStore()
    bad = {"usage": {"total": {"requests": 3}, "lastUsedAt": "yesterday at noon"}}
    store.create(KIND_USER, "alice", bad)
    store.create(KIND_UPSTREAM, "tok", bad)
    flusher = _flusher(store)
    await flusher.flush()
    served(flusher.book, "alice", "tok", True, 0, 0, NOW)
    await flusher.flush()
    assert flusher.failures == 0
    for kind, name in ((KIND_USER, "alice"), (KIND_UPSTREAM, "tok")):
        assert _total(store, kind, name) == 4
        assert store.status(kind, name)["usage"]["lastUsedAt"] == "2026-11-25T12:00:00Z"


async def test_a_flush_keeps_a_few_writes_in_flight_and_writes_each_changed_object_once() -> None:
    """Thousands of changed objects are written a few at a time: a request queued behind the
    client's connections could time out after the API server applied it, and be counted twice."""
    store = MemoryStore()
    names = [f"user-{i}" for i in range(60)]
    for name in names:
        store.create(KIND_USER, name)
    flusher = _flusher(store, concurrency=4)
    for name in names:
        served(flusher.book, name, None, True, 0, 0, NOW)
    in_flight = peak = 0
    real = store.patch_status

    async def tracked(kind: str, name: str, rv: str, status: dict[str, Any]) -> Stored:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        try:
            return await real(kind, name, rv, status)
        finally:
            in_flight -= 1

    store.patch_status = tracked  # type: ignore[method-assign]
    await flusher.flush()
    assert peak == 4 and store.patches == 60 and flusher.changed == 60 and flusher.writes == 60
    assert all(_total(store, KIND_USER, name) == 1 for name in names)


async def test_verdicts_are_not_applied_before_the_watch_listed_every_token() -> None:
    """Before its first list the cache knows no token; shown that, the balancer would take every
    token for deleted and forget its load and verdicts."""
    store = MemoryStore()
    store.create(KIND_UPSTREAM, "tok")
    balancer = HealthBook()
    flusher = Flusher(UsageBook(), store, FixedClock(), health=HealthSync(balancer))  # no watch yet
    balancer.started("tok")
    balancer.cooldown("tok", "RateLimited", seconds=60)
    await flusher.prime()
    await flusher.flush()
    state = balancer.get("tok")
    assert state.in_flight == 1 and state.cooling(balancer.clock())
    store.subscribe(flusher.cache)  # the watch listed: from now on the cluster's view applies
    await flusher.flush()
    assert balancer.get("tok").in_flight == 1
