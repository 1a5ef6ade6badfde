"""Limit decisions: global (as the status cache holds it) + local unflushed + in flight, day/minute
windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenpool_proxy.usage.counters import UsageBook
from tokenpool_proxy.usage.limits import Limiter
from tokenpool_proxy.usage.status_cache import StatusCache
from tokenpool_proxy.usage.store import Stored

from tests.support.usage_counting import served
from tokenpool.contract.compiled import KIND_USER, Limits
from tokenpool.contract.status_fields import DayUsage, MinuteUsage, Usage, to_wire

NOON = datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC)


def _serve(limiter: Limiter, book: UsageBook, user: str, limits: Limits, now: datetime) -> bool:
    """One request as the proxy runs it: admit, record, release."""
    if limiter.admit(user, limits, now) is not None:
        return False
    served(book, user, "tok", True, 0, 0, now)
    limiter.release(user)
    return True


def test_the_limit_plus_first_request_per_day_is_rejected_until_the_next_utc_day() -> None:
    book = UsageBook()
    limiter = Limiter(book, StatusCache())
    limits = Limits(requests_per_day=3)
    assert [_serve(limiter, book, "u", limits, NOON + timedelta(minutes=i)) for i in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    rejection = limiter.check("u", limits, NOON + timedelta(minutes=5))
    assert rejection is not None and rejection.limit == "requestsPerDay"
    assert rejection.retry_after_s == 12 * 3600 - 5 * 60 - 10
    assert rejection.openai_error()["error"]["code"] == "requestsPerDay"
    assert "requestsPerDay=3" in rejection.message
    assert _serve(limiter, book, "u", limits, NOON + timedelta(hours=12))


def test_per_minute_window_and_retry_after() -> None:
    book = UsageBook()
    limiter = Limiter(book, StatusCache())
    limits = Limits(requests_per_minute=2)
    assert _serve(limiter, book, "u", limits, NOON) and _serve(limiter, book, "u", limits, NOON)
    rejection = limiter.admit("u", limits, NOON + timedelta(seconds=20))
    assert rejection is not None and rejection.limit == "requestsPerMinute" and rejection.retry_after_s == 30
    assert _serve(limiter, book, "u", limits, NOON + timedelta(seconds=50))


def test_global_count_from_status_plus_local_unflushed_and_in_flight() -> None:
    book, cache = UsageBook(), StatusCache()
    limiter = Limiter(book, cache)
    # Other replicas already wrote 8 requests today and 1 this minute.
    usage = Usage(
        daily=[DayUsage(date="2026-11-24", requests=30), DayUsage(date="2026-11-25", requests=8)],
        minute=MinuteUsage(start="2026-11-25T12:00Z", requests=1),
    )
    cache.put(KIND_USER, Stored("u", "5", {"usage": to_wire(usage)}))
    limits = Limits(requests_per_day=10)
    assert limiter.admit("u", limits, NOON) is None  # 8 + 0 + 0 < 10, now one in flight
    served(book, "u", "tok", True, 0, 0, NOON)  # recorded, still in flight: counted once by release
    limiter.release("u")
    assert limiter.admit("u", limits, NOON) is None  # 8 + 1 + 0
    rejected = limiter.admit("u", limits, NOON)  # 8 + 1 + 1 in flight
    assert rejected is not None and rejected.limit == "requestsPerDay"
    assert limiter.used_this_minute("u", NOON) == 2
    assert limiter.used_this_minute("u", NOON + timedelta(minutes=1)) == 0


def test_counts_being_flushed_still_count() -> None:
    book = UsageBook()
    limiter = Limiter(book, StatusCache())
    limits = Limits(requests_per_day=1)
    assert _serve(limiter, book, "u", limits, NOON)
    book.take()
    assert limiter.admit("u", limits, NOON) is not None


def test_concurrency_limit_and_release() -> None:
    book = UsageBook()
    limiter = Limiter(book, StatusCache())
    limits = Limits(max_concurrent_requests=2)
    assert limiter.admit("u", limits, NOON) is None
    assert limiter.admit("u", limits, NOON) is None
    rejection = limiter.admit("u", limits, NOON)
    assert (
        rejection is not None and rejection.limit == "maxConcurrentRequests" and rejection.retry_after_s == 1
    )
    limiter.release("u")
    assert limiter.admit("u", limits, NOON) is None
    assert limiter.admit("other", limits, NOON) is None  # per user


def test_no_limits_means_unlimited() -> None:
    book = UsageBook()
    limiter = Limiter(book, StatusCache())
    assert all(_serve(limiter, book, "u", Limits(), NOON) for _ in range(100))
    assert limiter.in_flight == {}
