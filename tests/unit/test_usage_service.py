"""What one client request counts: one request for the user whatever the failovers, one attempt
per upstream tried; hand-outs; limits in the user's unit."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from tokenpool_proxy.usage.clock import OffsetClock
from tokenpool_proxy.usage.counters import upstream_key, user_key
from tokenpool_proxy.usage.service import UsageService
from tokenpool_proxy.usage.usage_metrics import UsageMetrics

from tokenpool.contract.compiled import Limits, UserRoute

ALICE = UserRoute(user="alice", token_sha256="0" * 64, limits=Limits(requests_per_day=2))


def _service() -> UsageService:
    return UsageService(OffsetClock(), UsageMetrics(CollectorRegistry()))


def test_concurrent_requests_with_failovers_count_once_per_request() -> None:
    usage = _service()
    assert usage.check_limits(ALICE) is None  # request A: fails on both tokens
    assert usage.check_limits(ALICE) is None  # request B: fails over to tok-b and succeeds
    usage.record("alice", "tok-a", "error")
    usage.record("alice", "tok-a", "error")
    usage.record("alice", "tok-b", "error")
    usage.record("alice", "tok-b", "success", 7, 9)
    usage.release(ALICE)  # whichever request ends first takes the success: the totals are the same
    usage.release(ALICE)
    user = usage.book.pending[user_key("alice")].total
    assert (user.requests, user.successes, user.errors) == (2, 1, 1)
    assert (user.prompt_tokens, user.completion_tokens) == (7, 9)
    a, b = usage.book.pending[upstream_key("tok-a")].total, usage.book.pending[upstream_key("tok-b")].total
    assert (a.requests, a.errors, b.requests, b.successes, b.errors) == (2, 2, 2, 1, 1)
    assert usage.limiter.in_flight == {}
    # The daily limit counts requests, not attempts: 2 of 2 used.
    rejected = usage.check_limits(ALICE)
    assert rejected is not None and "requestsPerDay=2" in rejected.message


def test_a_handout_is_a_request_and_an_attempt() -> None:
    usage = _service()
    usage.record("alice", "tok-a", "handout")
    user = usage.book.pending[user_key("alice")].total
    assert (user.requests, user.successes) == (1, 1)
    assert usage.upstream_counter("tok-a").count == 1
    assert usage.upstream_counter("tok-a").last_used is not None
    assert usage.user_usage("alice").today_by_upstream is not None
