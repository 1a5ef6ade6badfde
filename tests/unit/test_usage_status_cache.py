"""The status cache: newest version wins whatever the arrival order, deletions stick, a relist
drops what disappeared, news about an object being written waits for the write, and the
figures the request path reads match the document."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.usage.counters import UsageBook, user_key
from tokenpool_proxy.usage.flush import Flusher
from tokenpool_proxy.usage.limits import Limiter
from tokenpool_proxy.usage.status_cache import Figures, StatusCache, newer
from tokenpool_proxy.usage.store import Stored

from tests.support.memory_status_store import MemoryStore
from tests.support.proxy_routes import upstream_route
from tests.support.usage_counting import served
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, Limits
from tokenpool.contract.status_fields import Usage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ALICE = user_key("alice")


def _usage(requests: int) -> dict[str, Any]:
    daily = [{"date": f"2026-11-{d:02d}", "requests": 100 + d} for d in range(1, 25)]
    daily.append({"date": "2026-11-25", "requests": requests})
    return {
        "usage": {
            "total": {"requests": 5000 + requests},
            "daily": daily,
            "minute": {"start": "2026-11-25T12:00Z", "requests": 2},
            "lastUsedAt": "2026-11-25T11:59:59Z",
        }
    }


def test_resource_versions_compare_as_integers() -> None:
    assert newer("10", "9") and not newer("9", "10") and not newer("10", "10")
    assert newer("100000000000000000001", "99999999999999999999")


def test_an_older_view_never_replaces_a_newer_one() -> None:
    cache = StatusCache()
    cache.put(KIND_USER, Stored("alice", "12", _usage(7), uid="u-1"))
    cache.put(KIND_USER, Stored("alice", "11", _usage(3)))  # a write answer that arrived late
    entry = cache.get(ALICE)
    assert entry is not None and (entry.resource_version, entry.uid) == ("12", "u-1")
    assert entry.figures.requests_on("2026-11-25") == 7
    cache.put(KIND_USER, Stored("alice", "13", _usage(9)))
    assert cache.figures(ALICE) == Figures(
        total_requests=5009,
        last_used=datetime(2026, 11, 25, 11, 59, 59, tzinfo=UTC).timestamp(),
        days=(("2026-11-23", 123), ("2026-11-24", 124), ("2026-11-25", 9)),
        minute=("2026-11-25T12:00Z", 2),
    )


def test_the_document_is_kept_whole_and_small() -> None:
    cache = StatusCache()
    status = _usage(7)
    cache.put(KIND_USER, Stored("alice", "1", status))
    entry = cache.get(ALICE)
    assert entry is not None and cache.usage(ALICE) == Usage.model_validate(status["usage"])
    assert len(entry.usage_z) < 600, "25 days of usage should compress well"


def test_a_deleted_object_is_not_brought_back_by_a_late_answer() -> None:
    cache = StatusCache()
    cache.put(KIND_USER, Stored("alice", "5", _usage(1)))
    cache.delete(KIND_USER, "alice", "8")
    cache.put(KIND_USER, Stored("alice", "6", _usage(2)), own_write=True)
    assert cache.get(ALICE) is None
    cache.put(KIND_USER, Stored("alice", "9", {}))  # created again
    assert cache.get(ALICE) is not None


def test_a_relist_drops_what_was_deleted_unseen_and_marks_the_kind_synced() -> None:
    cache = StatusCache()
    for name in ("a", "b"):
        cache.put(KIND_UPSTREAM, Stored(name, "3", {"health": {"state": "Unhealthy", "reason": "Suspended"}}))
    assert KIND_UPSTREAM not in cache.synced
    cache.put(KIND_UPSTREAM, Stored("b", "3", {}))
    cache.retain(KIND_UPSTREAM, {"b"})
    assert KIND_UPSTREAM in cache.synced
    healths = cache.healths()
    assert list(healths) == ["b"] and healths["b"] is not None and healths["b"].reason == "Suspended"


def test_unreadable_documents_read_as_empty_and_keep_the_version() -> None:
    cache = StatusCache()
    bad = {"usage": {"daily": [{"requests": 4}]}, "health": {"state": "Broken"}}
    cache.put(KIND_UPSTREAM, Stored("tok", "4", bad))
    entry = cache.get((KIND_UPSTREAM, "tok"))
    assert entry is not None and entry.resource_version == "4"
    assert entry.figures == Figures() and entry.health is None and entry.usage() == Usage()


async def test_news_of_an_object_being_written_waits_so_limits_never_count_twice() -> None:
    """The watch event of a replica's own write can arrive before the write's answer. Until the
    answer is in, the replica's delta is still "flushing": counting the event's document too
    would count those requests twice and refuse a request the limit allows."""
    store = MemoryStore()
    store.create(KIND_USER, "alice")
    flusher = Flusher(UsageBook(), store, _Clock())
    store.subscribe(flusher.cache)
    limiter = Limiter(flusher.book, flusher.cache)
    limits = Limits(requests_per_day=3)
    for _ in range(2):
        assert limiter.admit("alice", limits, NOW) is None
        served(flusher.book, "alice", None, True, 0, 0, NOW)
        limiter.release("alice")
    seen_during_write: list[int] = []
    real_patch = store.patch_status

    async def patch_then_yield(kind: str, name: str, rv: str, status: dict[str, Any]) -> Stored:
        result = await real_patch(kind, name, rv, status)  # the watch has told the cache already
        seen_during_write.append(limiter.used_today("alice", NOW))
        await asyncio.sleep(0)
        return result

    store.patch_status = patch_then_yield  # type: ignore[method-assign]
    await flusher.flush()
    assert seen_during_write == [2]
    assert limiter.used_today("alice", NOW) == 2 and limiter.admit("alice", limits, NOW) is None


class _Clock:
    def now(self) -> datetime:
        return NOW


def test_the_route_index_learns_its_owners_uids_from_the_cache() -> None:
    """One watch of PoolUsers and UpstreamTokens serves usage and route ownership: a route is
    served only while its resource exists with the uid its ownerReference carries."""
    index = RouteIndex(verify_owners=True)
    cache = StatusCache(owners=index)
    index.replace_upstreams([("tokenpool-upstream-t1", upstream_route("t1", "https://t.example/"), "u-1")])
    index.replace_users([])
    cache.put(KIND_UPSTREAM, Stored("t1", "3", {}, uid="u-1"))
    assert index.upstream("t1") is not None  # known, before the list even ended
    cache.retain(KIND_UPSTREAM, {"t1"})
    cache.retain(KIND_USER, set())
    assert index.ready
    cache.put(KIND_UPSTREAM, Stored("t1", "4", {"usage": {"total": {"requests": 1}}}, uid="u-1"))
    assert index.upstream("t1") is not None
    cache.delete(KIND_UPSTREAM, "t1", "5")
    assert index.upstream("t1") is None
    cache.put(KIND_UPSTREAM, Stored("t1", "6", {}, uid="u-2"))  # re-created: a new uid
    assert index.upstream("t1") is None  # the old route is not its
