"""Health write-back end to end with the real operator: a token the fake upstream revokes shows
as unhealthy in ``kubectl get ut`` within one flush interval, and the user's selector allocation
moves to another token, which then serves the user's requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.tokenpool_objects import Pool
from tests.support.usage_load import CHAT
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration

INTERVAL = 0.5


def test_revoked_token_is_reported_and_the_selector_moves_the_user(
    pool: Pool,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
    fake_upstream: FakeUpstream,
    kubectl: Callable[..., Any],
) -> None:
    operator_process(pool.ns)
    credentials = {name: f"cred-{name}-{pool.ns}" for name in ("tok-a", "tok-b")}
    for name, value in credentials.items():
        pool.credential(f"{name}-cred", value)
        pool.token(name, labels={"team": "x"}, endpoint=fake_upstream.tenant(name))
    pool.user("alice")
    pool.allocation("alice-x", "alice", selector={"matchLabels": {"team": "x"}}, count=1)
    first = wait_for(lambda: pool.upstream_names("alice"), timeout=30, what="alice's allocated token")
    assert len(first) == 1
    (picked,) = first
    (other,) = set(credentials) - {picked}
    token = wait_for(lambda: pool.personal_token("alice"), timeout=10, what="alice's personal token")
    proxies = [proxy_process(pool.ns, usage_flush_interval_seconds=INTERVAL) for _ in range(2)]

    fake_upstream.fault(credentials[picked], "unauthorized")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        r = client.post(f"{proxies[0].url}/v1/chat/completions", json=CHAT)
        assert r.status_code == 502  # the only allocated token is revoked
        found = time.monotonic()

        def state() -> str:
            out = kubectl("get", "ut", picked, "-n", pool.ns, "-o", "jsonpath={.status.health.state}")
            return str(out.stdout)

        wait_for(lambda: state() == "Unhealthy", timeout=INTERVAL + 5, interval=0.05, what="status.health")
        written = time.monotonic() - found

        def healthy_column() -> str:
            header, row = kubectl("get", "ut", picked, "-n", pool.ns).stdout.splitlines()[:2]
            return str(row.split()[header.split().index("HEALTHY")])

        wait_for(
            lambda: healthy_column() == "False",
            timeout=15,
            interval=0.1,
            what="kubectl get ut showing Healthy False",
        )
        shown = time.monotonic() - found
        print(
            f"\nrevoked token: status.health after {written:.2f}s, "
            f"Healthy=False in kubectl after {shown:.2f}s"
        )
        assert written <= INTERVAL + 1.0
        health = pool.get(c.KIND_UPSTREAM, picked)["status"]["health"]
        assert health["reason"] == "Unauthorized" and "Invalid token" not in str(health)

        wait_for(
            lambda: pool.upstream_names("alice") == [other], timeout=20, what="the selector moving alice"
        )
        # Both replicas route to the replacement as soon as their watch has the new route.
        for proxy in proxies:
            wait_for(
                lambda proxy=proxy: (
                    client.post(f"{proxy.url}/v1/chat/completions", json=CHAT).status_code == 200
                ),
                timeout=10,
                what=f"{proxy.url} serving alice through {other}",
            )
    wait_for(
        lambda: (
            (pool.get(c.KIND_UPSTREAM, other).get("status") or {})
            .get("usage", {})
            .get("total", {})
            .get("requests")
            == 2
        ),
        timeout=10,
        what=f"{other}'s usage written",
    )
