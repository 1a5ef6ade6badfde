"""Two real proxy processes against the real API server and the fake Augment upstream:
exact totals, graceful and brutal shutdowns, limits across a UTC day, health visibility.

Routes are written as the operator would (``routes_in_cluster``); the PoolUser/UpstreamToken
objects exist so the proxies have a status to write into.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.proxy_routes import RoutesInCluster, new_personal_token, upstream_route, user_route
from tests.support.usage_fixtures import UsageObjects
from tests.support.usage_load import CHAT, access_log_successes, chat_load
from tests.support.waiting import wait_for
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER

pytestmark = pytest.mark.integration

INTERVAL = 0.5
TOKENS = ("tok-a", "tok-b")


@dataclass
class Pool:
    namespace: str
    objects: UsageObjects
    personal_token: str
    credentials: dict[str, str]

    def total(self, kind: str = KIND_USER, name: str = "alice") -> int:
        return self.objects.usage(kind, name).total.requests


@pytest.fixture
def usage_pool(
    namespace: str,
    usage_objects: Callable[[str], UsageObjects],
    routes_in_cluster: Callable[[str], RoutesInCluster],
    fake_upstream: FakeUpstream,
) -> Callable[..., Pool]:
    def make(**limits: int) -> Pool:
        objects, routes = usage_objects(namespace), routes_in_cluster(namespace)
        credentials = {}
        for name in TOKENS:
            credentials[name] = f"cred-{name}-{secrets.token_hex(8)}"
            objects.upstream(name, fake_upstream.tenant(name))
            routes.put_upstream(
                upstream_route(name, fake_upstream.tenant(name), credentials[name], maxConcurrency=32)
            )
        pt = new_personal_token()
        objects.user("alice")
        routes.put_user(user_route("alice", pt, TOKENS, limits=limits))
        return Pool(namespace, objects, pt, credentials)

    return make


def _gauge(proxy: ProxyProcess, series: str) -> float:
    text = httpx.get(f"{proxy.ops_url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def _replicas(
    proxy_process: Callable[..., ProxyProcess], namespace: str, n: int = 2, **env: Any
) -> list[ProxyProcess]:
    env = {"usage_flush_interval_seconds": INTERVAL, "slot_wait_seconds": 10, **env}
    procs = [proxy_process(namespace, wait=False, **env) for _ in range(n)]
    for p in procs:
        p.wait_ready()
    return procs


async def test_concurrent_requests_over_two_replicas_are_counted_exactly(
    usage_pool: Callable[..., Pool], proxy_process: Callable[..., ProxyProcess]
) -> None:
    p = usage_pool()
    replicas = _replicas(proxy_process, p.namespace)
    n = 200
    result = await chat_load([r.url for r in replicas], p.personal_token, n, concurrency=24)
    assert result.statuses == {200: n} and not result.broken
    wait_for(lambda: p.total() == n, timeout=10, what=f"status total {n}")
    by_token = sum(p.total(KIND_UPSTREAM, t) for t in TOKENS)
    assert by_token == n
    logged = [access_log_successes(r.process.log_path) for r in replicas]
    assert sum(logged) == n and all(logged), logged
    usage = p.objects.usage(KIND_USER, "alice")
    assert usage.today is not None and usage.today.successes == n
    assert {u.name for u in usage.today_by_upstream or []} == set(TOKENS)
    for r in replicas:  # the write-back is visible in each replica's metrics
        assert _gauge(r, "tokenpool_proxy_status_writes_total") >= 1
        assert _gauge(r, "tokenpool_proxy_usage_flush_lag_seconds") < INTERVAL * 4
        assert (
            _gauge(r, 'tokenpool_proxy_usage_records_total{outcome="success"}') == logged[replicas.index(r)]
        )


async def test_sigterm_mid_load_finishes_in_flight_requests_and_loses_nothing(
    usage_pool: Callable[..., Pool],
    proxy_process: Callable[..., ProxyProcess],
    fake_upstream: FakeUpstream,
) -> None:
    p = usage_pool()
    fake_upstream.configure(first_delay_ms=150)
    # A long interval: only the final flush on SIGTERM can save the stopping replica's counts.
    stopping = proxy_process(p.namespace, usage_flush_interval_seconds=3600, slot_wait_seconds=10)
    staying = proxy_process(p.namespace, usage_flush_interval_seconds=INTERVAL, slot_wait_seconds=10)
    urls = [stopping.url, staying.url]
    load = asyncio.create_task(chat_load(urls, p.personal_token, 320, concurrency=16, resend_resets=True))
    await asyncio.to_thread(wait_for, lambda: access_log_successes(stopping.process.log_path) >= 20, 20)
    term_at = time.monotonic()
    os.killpg(stopping.process.pid, signal.SIGTERM)
    result = await load
    finished_after_term = sum(1 for t in result.ok[stopping.url] if t > term_at)
    assert finished_after_term > 0, "nothing was in flight at SIGTERM: the test proves nothing"
    # uvicorn re-raises the signal once its graceful shutdown (and our final flush) is done.
    assert stopping.process.popen.wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in stopping.log()
    # Connections the closing replica had accepted but not yet read a request from are closed
    # (HTTP's shutdown race) and resent; requests it had started all got their answer:
    assert result.resent == len(result.broken) <= 16, result.broken
    assert result.statuses == {200: 320}
    wait_for(lambda: p.total() == 320, timeout=10, what="status total 320")
    # Every request the stopping replica served was answered (its log = what the client got).
    assert access_log_successes(stopping.process.log_path) == len(result.ok.get(stopping.url, []))


async def test_sigkill_loses_at_most_one_flush_interval(
    usage_pool: Callable[..., Pool], proxy_process: Callable[..., ProxyProcess], fake_upstream: FakeUpstream
) -> None:
    interval = 1.0
    p = usage_pool()
    fake_upstream.configure(first_delay_ms=20)
    killed, alive = _replicas(proxy_process, p.namespace, usage_flush_interval_seconds=interval)
    # Long enough before the kill that several intervals were flushed: the bound below must bite.
    load = asyncio.create_task(chat_load([killed.url, alive.url], p.personal_token, 1400, concurrency=8))
    await asyncio.to_thread(wait_for, lambda: access_log_successes(killed.process.log_path) >= 500, 90)
    kill_at = time.monotonic()
    os.killpg(killed.process.pid, signal.SIGKILL)
    result = await load
    # Requests in flight on the killed replica die with it; every other one is answered.
    assert set(result.statuses) == {200} and result.successes + len(result.broken) == 1400
    assert len(result.broken) <= 8  # at most the client's concurrency
    answered_by_killed = result.ok.get(killed.url, [])
    wait_for(lambda: _gauge(alive, "tokenpool_proxy_usage_unflushed_requests") == 0, timeout=10)
    lost = result.successes - p.total()
    # What a kill can lose: everything since the last confirmed write's snapshot, i.e. one interval
    # plus the duration of up to two writes (the confirmed one and the one the kill interrupted).
    write_slack = 1.0
    in_last_interval = sum(1 for t in answered_by_killed if kill_at - interval - write_slack <= t <= kill_at)
    print(
        f"\nSIGKILL: {lost} of the {len(answered_by_killed)} requests the killed replica answered were lost; "
        f"it answered {in_last_interval} in the last interval (+{write_slack} s for writes) before the kill; "
        f"{len(result.broken)} in flight died"
    )
    # A request counted and flushed but whose answer died with the process counts without a 200.
    assert -len(result.broken) <= lost <= in_last_interval


def _offset_to(hour: int, minute: int, second: int) -> float:
    """Clock offset putting a proxy at that UTC time of today: no test depends on when it runs."""
    now = datetime.now(UTC)
    return (now.replace(hour=hour, minute=minute, second=second, microsecond=0) - now).total_seconds()


def test_daily_limit_across_replicas_and_the_next_utc_day(
    usage_pool: Callable[..., Pool], proxy_process: Callable[..., ProxyProcess]
) -> None:
    p = usage_pool(requestsPerDay=3)
    noon = _offset_to(12, 0, 0)
    today = proxy_process(p.namespace, usage_flush_interval_seconds=INTERVAL, usage_clock_offset_seconds=noon)
    headers = {"Authorization": f"Bearer {p.personal_token}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        codes = [client.post(f"{today.url}/v1/chat/completions", json=CHAT).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.post(f"{today.url}/v1/chat/completions", json=CHAT)
        assert r.status_code == 429
        assert 12 * 3600 - 60 <= int(r.headers["Retry-After"]) <= 12 * 3600  # to the next UTC midnight
        assert "requestsPerDay=3" in r.json()["error"]["message"]
        assert r.json()["error"]["type"] == "rate_limit_error"
        wait_for(lambda: p.total() == 3, timeout=10, what="the day's counts written")
        # Another replica on the same day knows the count from the status (read at startup)...
        other = proxy_process(
            p.namespace, usage_flush_interval_seconds=INTERVAL, usage_clock_offset_seconds=noon
        )
        assert client.post(f"{other.url}/v1/chat/completions", json=CHAT).status_code == 429
        # ... and one whose clock is the next UTC day starts afresh.
        tomorrow = proxy_process(
            p.namespace, usage_flush_interval_seconds=INTERVAL, usage_clock_offset_seconds=noon + 86400
        )
        assert client.post(f"{tomorrow.url}/v1/chat/completions", json=CHAT).status_code == 200
    wait_for(
        lambda: len(p.objects.usage(KIND_USER, "alice").daily) == 2, timeout=10, what="two days of history"
    )
    daily = p.objects.usage(KIND_USER, "alice").daily
    assert [d.requests for d in daily] == [3, 1]


def test_per_minute_limit_and_the_next_minute(
    usage_pool: Callable[..., Pool], proxy_process: Callable[..., ProxyProcess]
) -> None:
    p = usage_pool(requestsPerMinute=2)
    start = _offset_to(12, 0, 1)  # the requests below take far less than the 59 s left
    proxy = proxy_process(
        p.namespace, usage_flush_interval_seconds=INTERVAL, usage_clock_offset_seconds=start
    )
    headers = {"Authorization": f"Bearer {p.personal_token}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        codes = [client.post(f"{proxy.url}/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = client.post(f"{proxy.url}/v1/chat/completions", json=CHAT)
        assert "requestsPerMinute=2" in r.json()["error"]["message"]
        assert 1 <= int(r.headers["Retry-After"]) <= 59
        later = proxy_process(
            p.namespace, usage_flush_interval_seconds=INTERVAL, usage_clock_offset_seconds=start + 60
        )
        assert client.post(f"{later.url}/v1/chat/completions", json=CHAT).status_code == 200
        assert client.post(f"{later.url}/v1/chat/completions", json=CHAT).status_code == 200
        assert client.post(f"{later.url}/v1/chat/completions", json=CHAT).status_code == 429


def test_unhealthy_token_shows_in_status_within_one_interval_and_other_replica_avoids_it(
    usage_pool: Callable[..., Pool],
    proxy_process: Callable[..., ProxyProcess],
    fake_upstream: FakeUpstream,
    kubectl: Callable[..., Any],
) -> None:
    p = usage_pool()
    finder, other = _replicas(proxy_process, p.namespace)
    fake_upstream.fault(p.credentials["tok-a"], "unauthorized")
    headers = {"Authorization": f"Bearer {p.personal_token}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(4):  # fails over to tok-b: every request still succeeds
            assert client.post(f"{finder.url}/v1/chat/completions", json=CHAT).status_code == 200
        found = time.monotonic()

        def shown() -> bool:
            out = kubectl("get", "ut", "tok-a", "-n", p.namespace, "-o", "jsonpath={.status.health.state}")
            return bool(out.stdout == "Unhealthy")

        wait_for(shown, timeout=INTERVAL * 2 + 5, interval=0.05, what="kubectl get ut showing Unhealthy")
        elapsed = time.monotonic() - found
        print(
            f"\nunhealthy token visible in kubectl {elapsed:.2f}s after it was found (interval {INTERVAL}s)"
        )
        assert elapsed <= INTERVAL + 1.5
        health = p.objects.status(KIND_UPSTREAM, "tok-a")["health"]
        assert health["reason"] == "Unauthorized" and health["lastError"] == "Unauthorized"
        assert "Invalid token" not in str(health)
        # The other replica learns it from the status and never sends tok-a a request.
        before = fake_upstream.stats().get(p.credentials["tok-a"], {}).get("requests", 0)
        wait_for(
            lambda: _gauge(other, 'tokenpool_proxy_upstream_tokens{state="Unhealthy"}') == 1,
            timeout=INTERVAL * 2 + 5,
            what="the other replica adopting the verdict",
        )
        for _ in range(6):
            assert client.post(f"{other.url}/v1/chat/completions", json=CHAT).status_code == 200
        assert fake_upstream.stats().get(p.credentials["tok-a"], {}).get("requests", 0) == before
