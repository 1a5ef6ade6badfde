"""Operational endpoints live on their own port: never on the public one, and the operations
port serves nothing else."""

from __future__ import annotations

import httpx
from tokenpool_proxy.app import create_app
from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.settings import ProxySettings


async def test_ops_paths_only_on_the_ops_port_and_nothing_else_there() -> None:
    index = RouteIndex()
    index.replace_users([])
    index.replace_upstreams([])
    app = create_app(ProxySettings(ops_port=9999), index=index)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://proxy:8080") as public,
        httpx.AsyncClient(transport=transport, base_url="http://proxy:9999") as ops,
    ):
        for path in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
            r = await public.get(path)
            assert r.status_code == 404 and r.json() == {"error": "not found"}, path
            assert (await ops.get(path)).status_code == 200, path
        assert "tokenpool_proxy_requests_total" in (await ops.get("/metrics")).text
        for path in ("/api/tokens", "/v1/models", "/health"):
            assert (await ops.get(path)).status_code == 404, path
        assert (await public.get("/health")).status_code == 200  # the original's public check
        assert (await public.get("/api/tokens")).status_code == 401


async def test_readiness_turns_false_while_a_watch_stays_failing_and_back_after_the_relist() -> None:
    class Watch:
        failing = 0.0

        def stale_for(self) -> float:
            return self.failing

    index = RouteIndex()
    index.replace_users([])
    index.replace_upstreams([])
    app = create_app(ProxySettings(ops_port=0, routes_stale_seconds=30), index=index)
    watch = Watch()
    app.state.svc.watchers.append(watch)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
        assert (await client.get("/readyz")).status_code == 200
        watch.failing = 29  # failing, but not for long: still serving what it has
        assert (await client.get("/readyz")).status_code == 200
        watch.failing = 31
        r = await client.get("/readyz")
        assert r.status_code == 503 and r.json()["reason"] == "routes are stale: a watch keeps failing"
        assert "tokenpool_proxy_ready 0.0" in (await client.get("/metrics")).text
        watch.failing = 0  # relisted
        assert (await client.get("/readyz")).status_code == 200
