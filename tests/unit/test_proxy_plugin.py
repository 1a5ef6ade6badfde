"""The plugin API and ops endpoints over an in-memory index (no API server, no upstream calls)."""

from __future__ import annotations

import pytest

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route

PT_A = new_personal_token()
PT_B = new_personal_token()
PT_S = new_personal_token()


def routes():
    ups = [
        upstream_route("a1", "https://d1.api.augmentcode.com/", token="tok-a1"),
        upstream_route("a2", "https://d2.api.augmentcode.com/", token="tok-a2"),
        upstream_route("sus", "https://d3.api.augmentcode.com/", token="tok-sus", suspended=True),
        upstream_route("oai", "https://api.example.com/v1/", token="tok-oai", provider="OpenAI"),
        upstream_route("b1", "https://d4.api.augmentcode.com/", token="tok-b1"),
    ]
    users = [
        user_route("alice", PT_A, ["a1", "a2", "sus", "oai"]),
        user_route("bob", PT_B, ["b1"]),
        user_route("sam", PT_S, ["a1"], suspended=True),
    ]
    return users, ups


@pytest.fixture
async def proxy(inprocess_proxy):
    users, ups = routes()
    return await inprocess_proxy(users=users, upstreams=ups)


def bearer(pt):
    return {"Authorization": f"Bearer {pt}"}


async def test_user_info_by_query_and_by_bearer(proxy):
    for kwargs in ({"params": {"token": PT_A}}, {"headers": bearer(PT_A)}):
        r = await proxy.client.get("/api/user/info", **kwargs)
        assert r.status_code == 200
        assert r.json() == {
            "status": "success",
            "user": {
                "id": "uid-alice",
                "username": "alice",
                "email": "alice@example.com",
                "token_quota": 3,
                "status": "active",
                "created_at": "2026-11-25 10:11:12",
            },
        }


async def test_user_info_errors(proxy):
    r = await proxy.client.get("/api/user/info")
    assert (r.status_code, r.json()) == (400, {"error": "Missing personal token"})
    r = await proxy.client.get("/api/user/info", params={"token": "f" * 64})
    assert (r.status_code, r.json()) == (401, {"error": "Invalid personal token"})
    r = await proxy.client.get("/api/user/info", params={"token": PT_S})
    assert (r.status_code, r.json()) == (403, {"error": "User is suspended"})


async def test_tokens_list_only_usable_augment_tokens_least_used_first(proxy):
    r = await proxy.client.get("/api/tokens", headers=bearer(PT_A))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and body["total_count"] == 2
    assert [t["token"] for t in body["tokens"]] == ["tok-a1", "tok-a2"]
    assert body["tokens"][0] == {
        "token": "tok-a1",
        "tenant_url": "https://d1.api.augmentcode.com/",
        "usage_count": 0,
        "last_used": None,
        "status": "active",
    }
    # The plugin used a1 ("delete" = switch next time): a2 is now the least used.
    r = await proxy.client.delete("/api/tokens/tok-a1", headers=bearer(PT_A))
    assert (r.status_code, r.json()) == (200, {"status": "success"})
    body = (await proxy.client.get("/api/tokens", headers=bearer(PT_A))).json()
    assert [t["token"] for t in body["tokens"]] == ["tok-a2", "tok-a1"]
    assert body["tokens"][1]["usage_count"] == 1 and body["tokens"][1]["last_used"] is not None
    # Never deleted: the shared token is still routed.
    assert proxy.index.upstream("a1") is not None


async def test_unhealthy_token_is_not_handed_out(proxy):
    proxy.svc.health.unhealthy("a1", "Unauthorized")
    body = (await proxy.client.get("/api/tokens", headers=bearer(PT_A))).json()
    assert [t["token"] for t in body["tokens"]] == ["tok-a2"]


async def test_users_are_isolated(proxy):
    body = (await proxy.client.get("/api/tokens", headers=bearer(PT_B))).json()
    assert [t["token"] for t in body["tokens"]] == ["tok-b1"]
    r = await proxy.client.delete("/api/token/tok-a1", headers=bearer(PT_B))
    assert (r.status_code, r.json()) == (404, {"status": "error", "error": "Token not found"})


async def test_tokens_auth_errors(proxy):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        r = await proxy.client.get("/api/tokens", headers=headers)
        assert (r.status_code, r.json()) == (401, {"error": "Missing or invalid authorization header"})
    r = await proxy.client.get("/api/tokens", headers=bearer("0" * 64))
    assert (r.status_code, r.json()) == (401, {"error": "Invalid personal token"})
    r = await proxy.client.delete("/api/tokens/tok-a1", headers=bearer("0" * 64))
    assert (r.status_code, r.json()) == (401, {"error": "Invalid personal token"})
    r = await proxy.client.get("/api/tokens", headers=bearer(PT_S))
    assert r.status_code == 403


async def test_empty_pool_is_an_empty_list(inprocess_proxy):
    proxy = await inprocess_proxy(users=[user_route("eve", PT_A, [])])
    r = await proxy.client.get("/api/tokens", headers=bearer(PT_A))
    assert r.json() == {"status": "success", "tokens": [], "total_count": 0}


async def test_cors_and_options_and_request_id(proxy):
    r = await proxy.client.options("/api/tokens")
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    r = await proxy.client.get("/api/tokens", headers={**bearer(PT_A), "x-request-id": "req-123"})
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["x-request-id"] == "req-123"
    r = await proxy.client.get("/api/tokens", headers={**bearer(PT_A), "x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


async def test_ops_endpoints(inprocess_proxy):
    from tokenpool_proxy.index import RouteIndex

    proxy = await inprocess_proxy()
    assert (await proxy.client.get("/healthz")).json() == {"status": "ok"}
    assert (await proxy.client.get("/readyz")).status_code == 200
    health = (await proxy.client.get("/health")).json()
    assert health["status"] == "healthy" and "timestamp" in health and health["stats"]["users"] == 0
    metrics = (await proxy.client.get("/metrics")).text
    assert "tokenpool_proxy_ready 1.0" in metrics
    assert 'tokenpool_proxy_requests_total{route="/health",status="200"} 1.0' in metrics
    # Not ready before the first full sync of both kinds.
    proxy.svc.index = RouteIndex()
    assert (await proxy.client.get("/readyz")).status_code == 503
