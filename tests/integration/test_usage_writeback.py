"""The flusher against the real API server, each replica's status cache fed by its real watch:
exact totals from concurrent replicas (real 409s), operator fields untouched, health written and
read back by the other replica, deleted objects dropped."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from tokenpool_proxy.token_health import HealthBook
from tokenpool_proxy.usage.clock import SystemClock
from tokenpool_proxy.usage.counters import UsageBook
from tokenpool_proxy.usage.flush import Flusher
from tokenpool_proxy.usage.health_status import HealthSync
from tokenpool_proxy.usage.kube_status import KubeStatusStore

from tests.support.usage_counting import served
from tests.support.usage_fixtures import UsageObjects
from tests.support.waiting import async_wait_for
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.kube.client import KubeClient

pytestmark = pytest.mark.integration

CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Compiled",
    "message": "set by the operator",
    "lastTransitionTime": "2026-11-25T00:00:00Z",
}


class CountingKube(KubeClient):
    """The project's client, counting the requests it sends (watches apart) by method."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.sent: Counter[str] = Counter()

    async def request(self, method: str, path: str, *args: Any, **kw: Any) -> dict[str, Any] | None:
        self.sent[method] += 1
        return await super().request(method, path, *args, **kw)


Replica = Callable[..., Awaitable[Flusher]]


@pytest.fixture
async def replica(kube_client: KubeClient, namespace: str) -> AsyncIterator[Replica]:
    """``await replica(health=None)``: a flusher whose status cache follows the namespace (its
    watch is listed before it is handed out, and stopped after the test); ``.store._kube.sent``
    counts its requests."""
    tasks: list[asyncio.Task[None]] = []
    clients: list[KubeClient] = []

    async def make(health: HealthBook | None = None) -> Flusher:
        kube = CountingKube(kube_client.config)
        clients.append(kube)
        store = KubeStatusStore(kube, namespace)
        sync = HealthSync(health) if health is not None else None
        flusher = Flusher(UsageBook(), store, SystemClock(), interval_s=3600, health=sync)
        listed = asyncio.Event()
        tasks.append(asyncio.create_task(store.watch(flusher.cache, listed)))
        await asyncio.wait_for(listed.wait(), 30)
        return flusher

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for kube in clients:
        await kube.close()


async def _seen(replica: Flusher, kind: str, name: str, what: Callable[[Any], bool]) -> None:
    """Wait until the replica's watch delivered a state of the object that satisfies ``what``."""

    async def arrived() -> bool:
        entry = replica.cache.get((kind, name))
        return entry is not None and what(entry)

    await async_wait_for(arrived, timeout=20, what=f"{kind} {name} in the replica's status cache")


async def test_concurrent_replicas_write_exact_totals(
    replica: Replica, namespace: str, usage_objects: Callable[[str], UsageObjects]
) -> None:
    objects = usage_objects(namespace)
    objects.user("alice")
    objects.upstream("tok-a", "https://t.example/")
    objects.upstream("tok-b", "https://t.example/")
    objects.set_status(KIND_USER, "alice", {"conditions": [CONDITION], "observedGeneration": 1})
    replicas = [await replica() for _ in range(3)]
    expected = 0
    for rounds in range(4):  # every round: all replicas flush at the same instant
        for i, replica in enumerate(replicas):
            for n in range(5 + i + rounds):
                upstream = "tok-a" if n % 2 else "tok-b"
                served(replica.book, "alice", upstream, n % 3 != 0, 10, 20, datetime.now(UTC))
                expected += 1
        await asyncio.gather(*(r.flush() for r in replicas))
    usage = objects.usage(KIND_USER, "alice")
    assert usage.total.requests == expected
    assert usage.total.prompt_tokens == 10 * expected and usage.total.completion_tokens == 20 * expected
    assert usage.today is not None and usage.today.requests == expected
    split = {u.name: u.requests for u in usage.today_by_upstream or []}
    assert sum(split.values()) == expected
    assert objects.usage(KIND_UPSTREAM, "tok-a").total.requests == split["tok-a"]
    assert objects.usage(KIND_UPSTREAM, "tok-b").total.requests == split["tok-b"]
    assert sum(r.conflicts for r in replicas) > 0, "the replicas never raced: the test proves nothing"
    # The operator's fields are untouched.
    status = objects.status(KIND_USER, "alice")
    assert status["conditions"][0]["message"] == "set by the operator" and status["observedGeneration"] == 1
    assert all(not r.book.pending and not r.book.flushing for r in replicas)


async def test_health_is_written_cleared_by_an_admin_and_read_back(
    replica: Replica, namespace: str, usage_objects: Callable[[str], UsageObjects]
) -> None:
    objects = usage_objects(namespace)
    objects.upstream("tok-a", "https://t.example/")
    balancer_a, balancer_b = HealthBook(), HealthBook()
    a, b = await replica(balancer_a), await replica(balancer_b)
    balancer_a.unhealthy("tok-a", "Unauthorized")
    await a.flush()
    health = objects.status(KIND_UPSTREAM, "tok-a")["health"]
    assert health["state"] == "Unhealthy" and health["reason"] == "Unauthorized"
    assert "cooldownUntil" not in health
    await _seen(b, KIND_UPSTREAM, "tok-a", lambda e: e.health is not None)
    await b.flush()
    assert balancer_b.get("tok-a").unhealthy_reason == "Unauthorized"
    objects.set_status(KIND_UPSTREAM, "tok-a", {"health": None})  # the documented admin clear
    for r in (a, b):
        await _seen(r, KIND_UPSTREAM, "tok-a", lambda e: e.health is None)
    await asyncio.gather(a.flush(), b.flush())
    assert balancer_a.get("tok-a").unhealthy_reason is None
    assert balancer_b.get("tok-a").unhealthy_reason is None
    assert "health" not in objects.status(KIND_UPSTREAM, "tok-a")


async def test_counts_of_a_deleted_object_are_dropped_not_retried_forever(
    replica: Replica, namespace: str, usage_objects: Callable[[str], UsageObjects]
) -> None:
    objects = usage_objects(namespace)
    objects.user("alice")
    flusher = await replica()
    served(flusher.book, "alice", None, True, 1, 1, datetime.now(UTC))
    served(flusher.book, "ghost", None, True, 1, 1, datetime.now(UTC))
    await flusher.flush()
    assert objects.usage(KIND_USER, "alice").total.requests == 1
    assert not flusher.book.pending and flusher.failures == 0


async def test_an_idle_replica_sends_nothing_and_a_busy_one_one_write_per_changed_object(
    replica: Replica, namespace: str, usage_objects: Callable[[str], UsageObjects]
) -> None:
    """The cost of the status loop follows the traffic: beyond its watches, an idle replica sends
    no request at all, whatever the number of objects; with counts for some objects it sends one
    PATCH per changed object and reads nothing (the base document and version are cached)."""
    objects = usage_objects(namespace)
    names = [f"user-{i}" for i in range(20)]
    for name in names:
        objects.user(name)
    objects.upstream("tok-a", "https://t.example/")
    flusher = await replica(HealthBook())
    kube = flusher.store._kube  # type: ignore[attr-defined]
    listed = dict(kube.sent)
    assert not listed, f"the initial state comes with the watch (watch-list), yet it sent {listed}"
    for _ in range(3):
        await flusher.flush()
    assert kube.sent == listed, f"an idle flush sent {kube.sent - Counter(listed)}"
    for round_ in range(2):
        for name in names[:5]:
            served(flusher.book, name, "tok-a", True, 1, 1, datetime.now(UTC))
        before = Counter(kube.sent)
        await flusher.flush()
        sent = kube.sent - before
        assert sent == Counter({"PATCH": 6}), f"round {round_}: {sent}"
        # The next round writes from the versions these writes answered: no 409, no read.
        assert flusher.conflicts == 0
    assert objects.usage(KIND_USER, "user-0").total.requests == 2
    assert objects.usage(KIND_UPSTREAM, "tok-a").total.requests == 10
