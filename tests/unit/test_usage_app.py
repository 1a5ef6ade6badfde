"""Usage through the proxy app (ASGI, index fed by hand, no API server): 429s naming the limit,
``GET /api/user/usage``, ``/health`` stats and the usage metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from tokenpool_proxy.app import create_app
from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.settings import ProxySettings
from tokenpool_proxy.usage.service import UsageService
from tokenpool_proxy.usage.store import Stored

from tokenpool.contract.compiled import (
    KIND_UPSTREAM,
    AllocatedUpstream,
    Limits,
    UpstreamRoute,
    UserRoute,
    hash_personal_token,
)

PT = "a" * 64
OTHER_PT = "b" * 64


def _index(limits: Limits) -> RouteIndex:
    index = RouteIndex()
    index.replace_users(
        [
            (
                "tokenpool-user-alice",
                UserRoute(
                    user="alice",
                    token_sha256=hash_personal_token(PT),
                    limits=limits,
                    upstreams=(AllocatedUpstream(name="tok-a"), AllocatedUpstream(name="tok-b")),
                ),
            ),
            (
                "tokenpool-user-bob",
                UserRoute(user="bob", token_sha256=hash_personal_token(OTHER_PT), suspended=True),
            ),
        ]
    )
    index.replace_upstreams(
        [
            (
                f"tokenpool-upstream-{n}",
                UpstreamRoute(name=n, endpoint="https://t.example/", token=f"secret-{n}"),
            )
            for n in ("tok-a", "tok-b")
        ]
    )
    return index


def _app(limits: Limits | None = None, **settings: object) -> FastAPI:
    return create_app(ProxySettings(**{"ops_port": 0, **settings}), index=_index(limits or Limits()))  # type: ignore[arg-type]


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(app: FastAPI) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


def _usage(app: FastAPI) -> UsageService:
    usage = app.state.svc.usage
    assert isinstance(usage, UsageService)
    return usage


ClientFor = Callable[[FastAPI], httpx.AsyncClient]
CHAT = {"model": "augment-chat", "messages": [{"role": "user", "content": "hi"}]}


async def test_over_the_daily_limit_is_429_with_retry_after_naming_the_limit(client_for: ClientFor) -> None:
    app = _app(Limits(requests_per_day=2))
    client = client_for(app)
    alice = app.state.svc.index.user_by_token_hash(hash_personal_token(PT))
    for _ in range(2):  # two requests served as the chat route does
        assert _usage(app).check_limits(alice) is None
        _usage(app).record("alice", "tok-a", "success", 3, 4)
        _usage(app).release(alice)
    r = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {PT}"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 86400
    error = r.json()["error"]
    assert "requestsPerDay=2" in error["message"] and error["type"] == "rate_limit_error"
    assert _usage(app).limiter.in_flight == {}  # a rejected request holds no slot
    metrics = (await client.get("/metrics")).text
    assert 'tokenpool_proxy_limit_rejections_total{limit="requestsPerDay"} 1.0' in metrics


async def test_user_usage_shows_the_callers_own_counts(client_for: ClientFor) -> None:
    app = _app()
    client = client_for(app)
    usage = _usage(app)
    alice = app.state.svc.index.user_by_token_hash(hash_personal_token(PT))
    assert usage.check_limits(alice) is None  # a request failing over from tok-b to tok-a
    usage.record("alice", "tok-b", "error", 5, 0, 0.2)
    usage.record("alice", "tok-a", "success", 10, 20, 0.1)
    usage.release(alice)
    usage.record("alice", "tok-a", "handout")  # the plugin took tok-a
    r = await client.get("/api/user/usage", headers={"Authorization": f"Bearer {PT}"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and body["user"] == "alice"
    doc = body["usage"]
    assert doc["total"] == {
        "requests": 2,
        "successes": 2,
        "errors": 0,
        "promptTokens": 15,
        "completionTokens": 20,
    }
    assert doc["today"]["requests"] == 2 and len(doc["daily"]) == 1
    assert {u["name"]: u["requests"] for u in doc["todayByUpstream"]} == {"tok-a": 2, "tok-b": 1}
    assert "secret-tok-a" not in r.text
    tokens = (await client.get("/api/tokens", headers={"Authorization": f"Bearer {PT}"})).json()["tokens"]
    assert [(t["token"], t["usage_count"]) for t in tokens] == [("secret-tok-b", 1), ("secret-tok-a", 2)]


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 401),
        ({"Authorization": "Bearer " + "c" * 64}, "", 401),
        ({"Authorization": f"Bearer {OTHER_PT}"}, "", 403),
        ({"Authorization": f"Bearer {PT}"}, "?days=0", 400),
        ({"Authorization": f"Bearer {PT}"}, "?days=abc", 400),
        ({"Authorization": f"Bearer {PT}"}, "?days=32", 400),
        ({"Authorization": f"Bearer {PT}"}, "?days=%C2%B2", 400),  # "²": isdigit() but not int()
        ({"Authorization": f"Bearer {PT}"}, "?days=%D9%A3", 400),  # Arabic-Indic three
    ],
)
async def test_user_usage_bad_requests_are_clear_4xx(
    client_for: ClientFor, headers: dict[str, str], query: str, status: int
) -> None:
    r = await client_for(_app()).get(f"/api/user/usage{query}", headers=headers)
    assert r.status_code == status and "error" in r.json()


async def test_health_stats_count_active_users_tokens_and_allocations(client_for: ClientFor) -> None:
    app = _app()
    app.state.svc.health.unhealthy("tok-b", "Unauthorized")
    stats = (await client_for(app).get("/health")).json()["stats"]
    assert (stats["active_users"], stats["active_tokens"], stats["active_allocations"]) == (1, 1, 1)


async def test_metrics_are_bounded_unless_per_user_is_on(client_for: ClientFor) -> None:
    app = _app()
    _usage(app).record("alice", "tok-a", "success", 1, 1, 0.3)
    text = (await client_for(app).get("/metrics")).text
    assert 'tokenpool_proxy_usage_records_total{outcome="success"} 1.0' in text
    assert "tokenpool_proxy_upstream_attempt_seconds_bucket" in text
    assert "tokenpool_proxy_in_flight_requests 0.0" in text
    assert "tokenpool_proxy_pool_utilisation 0.0" in text
    assert 'tokenpool_proxy_upstream_tokens{state="Healthy"} 2.0' in text
    assert "alice" not in text
    app = _app(metrics_per_user=True)
    _usage(app).record("alice", "tok-a", "success", 1, 1, 0.3)
    text = (await client_for(app).get("/metrics")).text
    assert 'tokenpool_proxy_user_records_total{outcome="success",user="alice"} 1.0' in text


async def test_a_malformed_last_used_at_in_status_does_not_break_the_token_list(
    client_for: ClientFor,
) -> None:
    """Whatever another writer left in ``status.usage.lastUsedAt``, ``/api/tokens`` answers."""
    app = _app()
    usage = _usage(app)
    status = {"usage": {"total": {"requests": 5}, "lastUsedAt": "soon"}}
    usage.cache.put(KIND_UPSTREAM, Stored("tok-a", "7", status))  # as the status watch shows it
    r = await client_for(app).get("/api/tokens", headers={"Authorization": f"Bearer {PT}"})
    assert r.status_code == 200
    tokens = {t["token"]: t for t in r.json()["tokens"]}
    assert tokens["secret-tok-a"]["usage_count"] == 5 and tokens["secret-tok-a"]["last_used"] is None
