"""The watch loops against a scripted API server: relist after 410 drops objects deleted during
the gap, malformed routes are not served, routes not controlled by the resource they name (whose
uids the status watch reports) are not served, any failure is survived, and an unreachable server
leaves the index serving."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
from aiohttp import web
from tokenpool_proxy.index import RouteIndex
from tokenpool_proxy.route_watch import Watcher, kinds
from tokenpool_proxy.usage.status_cache import StatusCache
from tokenpool_proxy.usage.status_watch import INITIAL_EVENTS_END, StatusWatch

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route
from tests.support.waiting import async_wait_for
from tokenpool.contract import compiled as contract
from tokenpool.dev.controlplane import free_port
from tokenpool.kube.client import KubeClient
from tokenpool.kube.credentials import ClusterConfig

PA, PB = new_personal_token(), new_personal_token()


def _ref(kind, name, uid=None):
    return [
        {
            "apiVersion": contract.API_VERSION,
            "kind": kind,
            "name": name,
            "uid": uid or f"uid-{name}",
            "controller": True,
        }
    ]


def cm(user, pt, rv, uid=None):
    """A user route Secret as the operator writes it (controller: the PoolUser ``user``)."""
    blob = base64.b64encode(contract.dump(user_route(user, pt, ["t1"])).encode()).decode()
    return {
        "metadata": {
            "name": f"tokenpool-user-{user}",
            "resourceVersion": rv,
            "ownerReferences": _ref(contract.KIND_USER, user, uid),
        },
        "data": {contract.USER_ROUTE_KEY: blob},
    }


def secret(name, rv, token="cred"):  # noqa: S107
    blob = base64.b64encode(contract.dump(upstream_route(name, "https://d1.example/", token=token)).encode())
    return {
        "metadata": {
            "name": f"tokenpool-upstream-{name}",
            "resourceVersion": rv,
            "ownerReferences": _ref(contract.KIND_UPSTREAM, name),
        },
        "data": {contract.UPSTREAM_ROUTE_KEY: blob.decode()},
    }


def owner(name, uid=None):
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": "1"}}


class ScriptedApi:
    """Lists return ``self.items``; each watch call plays the next script entry (a list of
    events; a trailing ``"hang"`` keeps the call open). Streams: ``configmaps`` (user routes,
    Secrets since routes moved there; the key is kept short), ``secrets`` (upstream routes),
    ``poolusers``, ``upstreamtokens``."""

    def __init__(self) -> None:
        names = ("configmaps", "secrets", "poolusers", "upstreamtokens")
        self.items = {n: [] for n in names}
        self.scripts = {n: [] for n in names}
        self.lists = dict.fromkeys(names, 0)
        self.items["poolusers"] = [owner("alice"), owner("bob"), owner("carol")]
        self.items["upstreamtokens"] = [owner("t1")]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        if resource == "secrets":
            selector = request.query["labelSelector"]
            resource = "configmaps" if selector.endswith("=user") else "secrets"
        if request.query.get("watch") != "1":
            self.lists[resource] += 1
            return web.json_response({"items": self.items[resource], "metadata": {"resourceVersion": "10"}})
        resp = web.StreamResponse()
        await resp.prepare(request)
        if request.query.get("sendInitialEvents") == "true":  # a watch-list: the state first
            for item in self.items[resource]:
                await resp.write(orjson.dumps({"type": "ADDED", "object": item}) + b"\n")
            end = {"resourceVersion": "10", "annotations": {INITIAL_EVENTS_END: "true"}}
            await resp.write(orjson.dumps({"type": "BOOKMARK", "object": {"metadata": end}}) + b"\n")
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
    app.router.add_get(
        f"/apis/{contract.GROUP}/{contract.VERSION}/namespaces/ns/{{resource}}", scripted.handle
    )
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    scripted.url = f"http://127.0.0.1:{port}"
    yield scripted
    await runner.cleanup()


async def run_watchers(url, index):
    """The route watches, and the status watch feeding the routes' owners (as app.py runs them)."""
    kube = KubeClient(ClusterConfig(server=url, namespace="ns"), retries=0)
    tasks = [asyncio.create_task(Watcher(kube, "ns", k, retry_s=0.05).run()) for k in kinds(index)]
    status = StatusWatch(kube, "ns", retry_s=0.05)
    tasks.append(asyncio.create_task(status.run(StatusCache(owners=index), asyncio.Event())))

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


async def test_only_routes_controlled_by_the_resource_they_name_are_served(api):
    forged = cm("mallory", PB, "2", uid="uid-alice")  # claims alice's uid for mallory: refused
    renamed = cm("bob", PB, "3")
    renamed["metadata"]["name"] = "bob-extra"  # right owner, not the operator's object name
    stale = cm("carol", "c" * 64, "4", uid="uid-old-carol")  # a deleted and re-created carol
    api.items["configmaps"] = [cm("alice", PA, "1"), forged, renamed, stale]
    api.items["secrets"] = [secret("t1", "5")]
    index = RouteIndex(verify_owners=True)
    stop = await run_watchers(api.url, index)
    try:
        await async_wait_for(lambda: _ready(index), what="synced")
        assert index.user_by_token_hash(contract.hash_personal_token(PA)).user == "alice"
        for pt in (PB, "c" * 64):
            assert index.user_by_token_hash(contract.hash_personal_token(pt)) is None
        assert index.upstream("t1") is not None
    finally:
        await stop()
    index.delete_owner(contract.KIND_UPSTREAM, "t1")  # the UpstreamToken is gone: so is its route
    assert index.upstream("t1") is None


def test_two_users_with_one_personal_token_are_both_refused():
    index = RouteIndex()
    index.replace_users([("a", user_route("alice", PA)), ("b", user_route("bob", PA))])
    assert index.user_by_token_hash(contract.hash_personal_token(PA)) is None
    index.delete_user("b")
    assert index.user_by_token_hash(contract.hash_personal_token(PA)).user == "alice"


async def test_a_watch_loop_survives_any_exception_and_reports_staleness(caplog):
    class Flaky:
        calls = 0

        async def list(self, *_a, **_k):
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise RuntimeError("unexpected")  # not a KubeError: the loop must outlive it
            return {"items": [], "metadata": {"resourceVersion": "1"}}

        async def watch(self, *_a, **_k):
            await asyncio.Event().wait()
            yield {}

    index = RouteIndex()
    watcher = Watcher(Flaky(), "ns", kinds(index)[1], retry_s=0.01)  # type: ignore[arg-type]
    assert watcher.stale_for() >= 0 and watcher.failing_since is not None
    task = asyncio.create_task(watcher.run())
    try:
        await async_wait_for(lambda: _synced(watcher), what="listed after two failures")
        assert Flaky.calls == 3 and index.upstreams_synced and watcher.stale_for() == 0
        assert sum("RuntimeError" in r.getMessage() for r in caplog.records) == 2
    finally:
        task.cancel()


async def _synced(watcher):
    return watcher.failing_since is None


async def _ready(index):
    return index.ready


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
