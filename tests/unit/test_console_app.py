"""The console app in-process (httpx over ASGI), with a mirror filled by hand and an API server
that does not answer: what it does without one, its base path, headers and schema."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from tokenpool_console.backend import Backend
from tokenpool_console.mirror import PoolMirror
from tokenpool_console.projections import user_row
from tokenpool_console.settings import ConsoleSettings
from tokenpool_console.webapp import create_app

from tokenpool.contract import compiled as c
from tokenpool.dev.controlplane import free_port
from tokenpool.kube.client import KubeClient
from tokenpool.kube.credentials import ClusterConfig

Make = Callable[..., Awaitable[tuple[httpx.AsyncClient, str]]]


@pytest.fixture
async def console() -> AsyncIterator[Make]:
    """``await console(**settings)`` → (client, an admin's personal token); the API server's
    address refuses connections."""
    stack: list[Any] = []

    async def make(**settings: Any) -> tuple[httpx.AsyncClient, str]:
        kube = KubeClient(ClusterConfig(server=f"http://127.0.0.1:{free_port()}"), retries=0, timeout_s=2)
        conf = ConsoleSettings(namespaces=["ns"], cookie_secure=False, **settings)
        mirror = PoolMirror(kube, conf.namespaces)
        token = secrets.token_hex(32)
        boss = {
            "metadata": {"name": "boss", "namespace": "ns"},
            "spec": {"role": "Admin"},
            "status": {"personalTokenSha256": c.hash_personal_token(token)},  # as the operator publishes it
        }
        mirror._put_route("ns", boss)
        mirror.pools["ns"].put_user(user_row({"metadata": {"name": "bob", "namespace": "ns"}, "spec": {}}))
        app = create_app(conf, Backend(conf, kube, mirror))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")
        stack.append((lifespan, client, kube))
        return client, token

    yield make
    for lifespan, client, kube in stack:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        await kube.close()


async def test_an_unreachable_api_server_is_a_503_not_a_500(console: Make) -> None:
    client, token = await console()
    answer = await client.post("/api/admin/users/bob/suspend", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "KubernetesUnavailable"
    assert (await client.get("/readyz")).status_code == 503, "not ready before the first list"


async def test_pages_send_people_to_the_login_and_htmx_follows(console: Make) -> None:
    client, _ = await console()
    page = await client.get("/users?q=x")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/users"
    fragment = await client.get("/users/-/table", headers={"HX-Request": "true"})
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"] == "/login?next=/users/-/table"
    login = await client.get("/login")
    assert login.headers["content-security-policy"].startswith("default-src 'self'")
    assert login.headers["cache-control"] == "no-store" and login.headers["x-frame-options"] == "DENY"
    assert (await client.get("/lang/zh", params={"next": "//evil.example/x"})).headers["location"] == "/"


async def test_under_a_base_path(console: Make) -> None:
    client, token = await console(base_path="/console")
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/console/users")).headers["location"] == "/console/login?next=/users"
    login = await client.get("/console/login")
    assert (
        'action="/console/login"' in login.text and 'src="/console/static/vendor/htmx.min.js"' in login.text
    )
    api = await client.get("/console/api/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and [u["name"] for u in api.json()["items"]] == ["bob"]


async def test_openapi_describes_the_api_not_the_pages(console: Make) -> None:
    client, _ = await console()
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    assert {
        "/api/admin/users",
        "/api/admin/tokens",
        "/api/admin/allocations/bulk",
        "/api/admin/stats",
        "/api/me",
        "/api/join",
    } <= set(paths)
    assert not [p for p in paths if not p.startswith("/api/")]
