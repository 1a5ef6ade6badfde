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
