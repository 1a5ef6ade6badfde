"""Balancer decisions and upstream error classification (pure, with a fake clock)."""

from __future__ import annotations

import asyncio

import pytest
from tokenpool_proxy.balancer import Balancer, NoCapacity, NoUpstream
from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.providers import augment, openai_compat
from tokenpool_proxy.token_health import HealthBook

from tests.support.proxy_routes import upstream_route, user_route


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(*upstreams, allocation=None):
    clock = Clock()
    index = RouteIndex()
    index.replace_upstreams([(u.name, u) for u in upstreams])
    health = HealthBook(usage_window_s=3600, cooldown_base_s=5, cooldown_max_s=600, clock=clock)
    index.upstream_listeners.append(health.route_changed)
    user = user_route("alice", "p" * 64, allocation or [u.name for u in upstreams])
    index.replace_users([("alice", user)])
    return Balancer(index, health), health, clock, user, index


def up(name, **kw):
    return upstream_route(name, f"https://{name}.example/", **kw)


def test_least_recently_used_rotates_over_a_tier():
    b, health, clock, user, _ = setup(up("a"), up("b"), up("c"))
    picks = []
    for _ in range(6):
        name = b.pick(user, "Augment").upstream.name
        health.started(name)
        health.finished(name)
        clock.now += 1
        picks.append(name)
    assert picks[:3] == ["a", "b", "c"] and picks[3:] == ["a", "b", "c"]


def test_least_used_wins_over_allocation_order():
    b, health, _clock, user, _ = setup(up("a"), up("b"))
    for _ in range(3):
        health.started("a")
        health.finished("a")
    assert b.pick(user, "Augment").upstream.name == "b"


def test_lower_tier_only_when_the_best_tier_is_unusable():
    b, health, _clock, user, _ = setup(up("a"), up("b"), allocation=[("a", 1), ("b", 2)])
    health.started("a")  # busy (maxConcurrency 1): still no spill to tier 2
    pick = b.pick(user, "Augment")
    assert pick.upstream is None and pick.wake_in is None
    health.finished("a")
    health.cooldown("a", "RateLimited")
    assert b.pick(user, "Augment").upstream.name == "b"


def test_concurrency_and_min_interval():
    b, health, _clock, user, _ = setup(up("a", maxConcurrency=2, minIntervalSeconds=0))
    health.started("a")
    assert b.pick(user, "Augment").upstream.name == "a"
    health.started("a")
    assert b.pick(user, "Augment").upstream is None
    b2, health2, clock2, user2, _ = setup(up("s", minIntervalSeconds=3))
    health2.started("s")
    health2.finished("s")
    clock2.now += 1
    pick = b2.pick(user2, "Augment")
    assert pick.upstream is None and pick.wake_in == pytest.approx(2.0)
    clock2.now += 2
    assert b2.pick(user2, "Augment").upstream.name == "s"


def test_unhealthy_suspended_and_other_provider_are_not_candidates():
    b, health, _clock, user, _index = setup(
        up("bad"),
        up("susp", suspended=True),
        up("down", healthy=False),
        up("oai", provider="OpenAI"),
        up("ok"),
    )
    health.unhealthy("bad", "Unauthorized")
    assert b.pick(user, "Augment").upstream.name == "ok"
    assert b.pick(user, "OpenAI").upstream.name == "oai"
    health.unhealthy("ok", "Suspended")
    with pytest.raises(NoUpstream) as info:
        b.pick(user, "Augment")
    assert info.value.allocated and info.value.retry_after is None


def test_no_allocation_at_all_is_reported_as_such():
    b, *_ = setup(up("a"))
    lonely = user_route("bob", "q" * 64, [])
    with pytest.raises(NoUpstream) as info:
        b.pick(lonely, "Augment")
    assert not info.value.allocated


def test_cooldown_backoff_then_half_open_single_trial():
    b, health, clock, user, _ = setup(up("a", maxConcurrency=4))
    assert health.cooldown("a", "ServerError") == 5
    with pytest.raises(NoUpstream) as info:
        b.pick(user, "Augment")
    assert info.value.retry_after == 5
    clock.now += 5
    assert health.get("a").half_open(clock.now)
    health.started("a")  # the trial
    assert b.pick(user, "Augment").upstream is None  # one trial at a time despite maxConcurrency 4
    health.finished("a")
    assert health.cooldown("a", "ServerError") == 10  # failed trial: backoff doubles
    clock.now += 10
    health.started("a")
    health.success("a")
    health.finished("a")
    assert not health.get("a").half_open(clock.now)
    assert health.cooldown("a", "RateLimited", 30) == 30  # Retry-After wins over backoff


def test_only_a_new_credential_endpoint_or_provider_forgets_verdicts():
    b, health, clock, user, index = setup(up("a", token="old"), up("b", token="b"))
    health.unhealthy("a", "Unauthorized")
    health.cooldown("b", "Blocked", seconds=600)
    # The operator recompiles both (policy, its healthy flag, the health reason): verdicts stay.
    index.put_upstream(
        "a", up("a", token="old", max_concurrency=3, healthy=False, health_reason="Unauthorized")
    )
    index.put_upstream("b", up("b", token="b", min_interval_seconds=1))
    with pytest.raises(NoUpstream):
        b.pick(user, "Augment")
    clock.now += 599
    with pytest.raises(NoUpstream):
        b.pick(user, "Augment")
    index.put_upstream("a", up("a", token="new"))  # a rotated credential: a new account
    assert b.pick(user, "Augment").upstream.name == "a"
    index.put_upstream("b", upstream_route("b", "https://elsewhere.example/", token="b"))
    assert health.get("b").consecutive_failures == 0 and not health.get("b").cooling(clock.now)


def test_deleted_route_leaves_nothing_behind():
    from tokenpool_proxy.request_metrics import Metrics

    _b, health, _clock, _user, index = setup(up("a"), up("b"))
    metrics = Metrics()
    index.upstream_listeners.append(metrics.route_changed)
    health.unhealthy("a", "Unauthorized")
    health.started("b")
    metrics.attempt("a", "Unauthorized")
    metrics.attempt("b", "Success")
    index.delete_upstream("a")
    assert 'upstream="a"' not in metrics.render(True, {}).decode()
    assert 'upstream="b"' in metrics.render(True, {}).decode()
    index.replace_upstreams([])
    assert health.names() == []
    assert "upstream=" not in metrics.render(True, {}).decode()


def test_backoff_keeps_growing_over_repeated_failures():
    _b, health, clock, _user, _index = setup(up("a"))
    rests = []
    for _ in range(4):
        rests.append(health.cooldown("a", "ServerError"))
        clock.now += rests[-1]
    assert rests == [5, 10, 20, 40]
    health.success("a")
    assert health.cooldown("a", "ServerError") == 5


async def test_acquire_waits_for_a_release_then_times_out_with_retry_after():
    b, health, _clock, user, _ = setup(up("a"))
    b.health.clock = asyncio.get_running_loop().time  # real time for the waiting part
    first = await b.acquire(user, "Augment")
    waiter = asyncio.create_task(b.acquire(user, "Augment", wait_s=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    first.release()
    second = await asyncio.wait_for(waiter, 1)
    assert second.upstream.name == "a"
    with pytest.raises(NoCapacity) as info:
        await b.acquire(user, "Augment", wait_s=0.05)
    assert info.value.retry_after >= 1
    second.release()
    second.release()  # idempotent
    assert health.get("a").in_flight == 0


@pytest.mark.parametrize(
    ("status", "text", "verdict", "reason"),
    [
        (401, "Invalid token", "unhealthy", "Unauthorized"),
        (401, "", "unhealthy", "Unauthorized"),
        (403, "Invalid token", "unhealthy", "Unauthorized"),
        # Notices, even in an error body, are suspicions confirmed by a probe (never failed over).
        (403, "Your account has been suspended because of abuse", "notice", "Suspended"),
        (402, "You are out of user messages for account x", "notice", "OutOfCredits"),
        (429, "Request blocked. Please reach out to support@augmentcode.com", "notice", "Blocked"),
        (429, "slow down", "cooldown", "RateLimited"),
        (503, "unavailable", "cooldown", "ServerError"),
        (500, "Your account has been suspended", "cooldown", "ServerError"),
        (402, "payment", "fail", "ClientError"),
        # The request itself is refused: the client's 4xx, whatever the body says.
        (400, "bad", "reject", "RequestRejected"),
        (400, "Your account has been suspended: echo of the prompt", "reject", "RequestRejected"),
        (404, "", "reject", "RequestRejected"),
        (413, "too large", "reject", "RequestRejected"),
        (422, "Invalid token in field x", "reject", "RequestRejected"),
    ],
)
def test_augment_classification(status, text, verdict, reason):
    failure = augment.classify_augment_failure(status, text, "7")
    assert (failure.verdict, failure.reason) == (verdict, reason)
    if reason == "RateLimited":
        assert failure.retry_after == 7


def test_notices_only_in_the_upstreams_own_shape():
    from tokenpool.upstream.signals import notice_reason

    assert notice_reason("Request blocked. Please reach out") == "Blocked"
    assert notice_reason("  Your account has been suspended because x") == "Suspended"
    assert notice_reason("Your subscription for account a@b is inactive.") == "Suspended"
    assert notice_reason("You have run out of credits") == "OutOfCredits"
    assert notice_reason("Here is how a request blocked by a firewall looks") is None
    assert notice_reason("def invalid_token(): ...") is None
    assert notice_reason("The user is inactive when the flag is unset.") is None
    assert notice_reason("Request blocked. " + "x" * 500) is None  # an answer, not a notice


@pytest.mark.parametrize(
    ("status", "verdict", "reason"),
    [
        (401, "unhealthy", "Unauthorized"),
        (429, "cooldown", "RateLimited"),
        (502, "cooldown", "ServerError"),
        (400, "reject", "RequestRejected"),
        (402, "fail", "ClientError"),
    ],
)
def test_openai_classification(status, verdict, reason):
    failure = openai_compat.classify_openai_failure(status, "x", None)
    assert (failure.verdict, failure.reason) == (verdict, reason)


async def test_a_release_wakes_one_waiter_first_come_first_served():
    """Thousands of requests may wait for a busy token: a release hands its slot to the one
    that waited longest, without every other waiter re-running the pick."""
    b, _health, _clock, user, _ = setup(up("a"))
    b.health.clock = asyncio.get_running_loop().time
    held = await b.acquire(user, "Augment")
    picks = 0
    real_pick = b.pick
    all_queued = asyncio.Event()

    def counting_pick(*args, **kw):
        nonlocal picks
        picks += 1
        if picks == 50:
            all_queued.set()  # every waiter tried once (and queues right after)
        return real_pick(*args, **kw)

    b.pick = counting_pick
    served: list[int] = []

    async def waiter(i: int) -> None:
        lease = await b.acquire(user, "Augment", wait_s=30)
        served.append(i)
        await asyncio.sleep(0)
        lease.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(50)]
    await asyncio.wait_for(all_queued.wait(), 5)
    await asyncio.sleep(0)  # the last one's queueing
    held.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert served == list(range(50))
    assert picks <= 50 + 50 + 5, f"{picks} picks for 50 releases: releases woke more than one waiter"


async def test_a_waiter_that_takes_another_token_passes_the_woken_slot_on():
    b, _health, _clock, user, _ = setup(up("a"), up("b"))
    b.health.clock = asyncio.get_running_loop().time
    lease_a = await b.acquire(user, "Augment")
    lease_b = await b.acquire(user, "Augment")
    first = asyncio.create_task(b.acquire(user, "Augment", wait_s=30))
    second = asyncio.create_task(b.acquire(user, "Augment", wait_s=30))
    await asyncio.sleep(0)
    # Both tokens free up in one step: the first waiter is woken by the first release and may
    # take either token; the other token must then go to the second waiter, not sit free.
    lease_a.release()
    lease_b.release()
    leases = await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert sorted(lease.upstream.name for lease in leases) == ["a", "b"]


async def test_a_waiter_cancelled_after_its_wake_up_passes_the_slot_on():
    b, _health, _clock, user, _ = setup(up("a"))
    b.health.clock = asyncio.get_running_loop().time
    held = await b.acquire(user, "Augment")
    leaving = asyncio.create_task(b.acquire(user, "Augment", wait_s=30))
    staying = asyncio.create_task(b.acquire(user, "Augment", wait_s=30))
    await asyncio.sleep(0)
    held.release()  # wakes `leaving`...
    leaving.cancel()  # ...whose client is gone before it runs
    lease = await asyncio.wait_for(staying, 5)
    assert lease.upstream.name == "a"
