"""The watch loop against a scripted API server: relist after 410 drops objects deleted during
the gap, malformed routes are not served, and an unreachable server leaves the index serving."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
from aiohttp import web
from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.route_watch import Watcher, kinds

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route
from tests.support.waiting import async_wait_for
from tokenpool.contract import compiled as contract
from tokenpool.dev.controlplane import free_port
from tokenpool.kube.client import KubeClient
from tokenpool.kube.credentials import ClusterConfig

PA, PB = new_personal_token(), new_personal_token()


def cm(user, pt, rv):
    return {
        "metadata": {"name": f"tokenpool-user-{user}", "resourceVersion": rv},
        "data": {contract.USER_ROUTE_KEY: contract.dump(user_route(user, pt, ["t1"]))},
    }


def secret(name, rv, token="cred"):  # noqa: S107
    blob = base64.b64encode(contract.dump(upstream_route(name, "https://d1.example/", token=token)).encode())
    return {
        "metadata": {"name": f"tokenpool-upstream-{name}", "resourceVersion": rv},
        "data": {contract.UPSTREAM_ROUTE_KEY: blob.decode()},
    }


class ScriptedApi:
    """Lists return ``self.items``; each watch call plays the next script entry (a list of
    events; a trailing ``"hang"`` keeps the call open)."""

    def __init__(self) -> None:
        self.items = {"configmaps": [], "secrets": []}
        self.scripts = {"configmaps": [], "secrets": []}
        self.lists = {"configmaps": 0, "secrets": 0}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        assert request.query["labelSelector"].startswith(contract.LABEL_ROUTE + "=")
        if request.query.get("watch") != "1":
            self.lists[resource] += 1
            return web.json_response({"items": self.items[resource], "metadata": {"resourceVersion": "10"}})
        resp = web.StreamResponse()
        await resp.prepare(request)
        script = self.scripts[resource].pop(0) if self.scripts[resource] else ["hang"]
        for event in script:
            if event == "hang":
                await asyncio.Event().wait()
            if event == "gap":  # what changes while the watch is down
                self.items = self.after_gap
                continue
            await resp.write(orjson.dumps(event) + b"\n")
        return resp


@pytest.fixture
async def api():
    scripted = ScriptedApi()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/{resource}", scripted.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    scripted.url = f"http://127.0.0.1:{port}"
    yield scripted
    await runner.cleanup()


async def run_watchers(url, index):
    kube = KubeClient(ClusterConfig(server=url, namespace="ns"), retries=0)
    tasks = [asyncio.create_task(Watcher(kube, "ns", k, retry_s=0.05).run()) for k in kinds(index)]

    async def stop():
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await kube.close()

    return stop


async def test_events_then_gone_relist_drops_what_was_deleted_meanwhile(api):
    api.items["configmaps"] = [cm("alice", PA, "1"), cm("bob", PB, "2")]
    api.items["secrets"] = [secret("t1", "3")]
    bad = cm("carol", "x" * 64, "5")
    bad["data"][contract.USER_ROUTE_KEY] = "{not json"
    # bob is deleted while the watch is down: the relist after 410 must not keep serving him.
    api.after_gap = {"configmaps": [cm("alice", PA, "7")], "secrets": api.items["secrets"]}
    api.scripts["configmaps"] = [
        [
            {"type": "MODIFIED", "object": cm("alice", PA, "4")},
            {"type": "ADDED", "object": bad},
            "gap",
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}},
        ],
    ]
    api.scripts["secrets"] = [[{"type": "MODIFIED", "object": secret("t1", "6", token="cred-2")}, "hang"]]
    index = RouteIndex()
    stop = await run_watchers(api.url, index)
    try:
        await async_wait_for(_relisted(api), what="relist after 410")
        await async_wait_for(_absent(index, PB), what="bob dropped by the relist")
        assert index.ready
        assert index.user_by_token_hash(contract.hash_personal_token(PA)).user == "alice"
        assert index.user_by_token_hash(contract.hash_personal_token("x" * 64)) is None  # malformed
        await async_wait_for(_token(index, "cred-2"), what="secret MODIFIED applied")
    finally:
        await stop()


async def test_unreachable_api_server_keeps_serving_the_last_known_routes(caplog):
    index = RouteIndex()
    index.replace_users([("u", user_route("alice", PA, ["t1"]))])
    index.replace_upstreams([("s", upstream_route("t1", "https://d1.example/"))])
    stop = await run_watchers(f"http://127.0.0.1:{free_port()}", index)
    try:
        await async_wait_for(_failed_attempts(caplog, 4), timeout=5, what="several failed list attempts")
        assert index.ready
        assert index.user_by_token_hash(contract.hash_personal_token(PA)) is not None
        assert index.upstream("t1") is not None
    finally:
        await stop()


def _failed_attempts(caplog, n):
    async def check():
        return sum("serving the last known routes" in r.getMessage() for r in caplog.records) >= n

    return check


def _token(index, token):
    async def check():
        return index.upstream("t1").token == token

    return check


def _relisted(api):
    async def check():
        return api.lists["configmaps"] >= 2

    return check


def _absent(index, pt):
    async def check():
        return index.user_by_token_hash(contract.hash_personal_token(pt)) is None

    return check
