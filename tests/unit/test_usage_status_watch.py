"""The status watch's protocol handling, against a scripted client: a watch-list's initial state
ends at its bookmark (and drops what was deleted unseen), changes follow; an API server without
watch-list gets list + watch; failures are retried and never block the start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tokenpool_proxy.usage.status_cache import StatusCache
from tokenpool_proxy.usage.status_watch import INITIAL_EVENTS_END, StatusWatch

from tests.support.waiting import async_wait_for
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.kube.client import KubeError


def _obj(name: str, rv: int, requests: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": str(rv), "uid": f"uid-{name}"},
        "status": {"usage": {"total": {"requests": requests}}},
    }


def _end(rv: int) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {"metadata": {"resourceVersion": str(rv), "annotations": {INITIAL_EVENTS_END: "true"}}},
    }


class ScriptedKube:
    """``watch``/``list_pages`` answer from per-plural scripts; each item is a list of events (one
    call), or an exception to raise. An exhausted script blocks (a quiet, open watch)."""

    def __init__(
        self, watches: dict[str, list[Any]], pages: dict[str, list[dict[str, Any]]] | None = None
    ) -> None:
        self.watches = watches
        self.pages_by_plural = pages or {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    async def watch(
        self, path: str, resource_version: str, params: dict[str, str] | None = None, timeout_s: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        plural = path.rsplit("/", 1)[1]
        self.calls.append((plural, resource_version, dict(params or {})))
        script = self.watches[plural]
        if not script:
            await asyncio.Event().wait()
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        for event in step:
            yield event

    async def list_pages(self, path: str) -> AsyncIterator[dict[str, Any]]:
        plural = path.rsplit("/", 1)[1]
        for page in self.pages_by_plural[plural]:
            yield page


async def _run(kube: ScriptedKube, cache: StatusCache) -> tuple[asyncio.Task[None], asyncio.Event]:
    first = asyncio.Event()
    task = asyncio.create_task(StatusWatch(kube, "ns", retry_s=0.01).run(cache, first))  # type: ignore[arg-type]
    return task, first


async def test_watch_list_initial_state_then_changes() -> None:
    cache = StatusCache()
    cache.put(KIND_USER, _stored("ghost", 1))  # deleted while nobody watched
    kube = ScriptedKube(
        {
            "poolusers": [
                [
                    {"type": "ADDED", "object": _obj("alice", 10, 4)},
                    _end(11),
                    {"type": "MODIFIED", "object": _obj("alice", 12, 5)},
                    {"type": "ADDED", "object": _obj("bob", 13)},
                    {"type": "DELETED", "object": _obj("bob", 14)},
                ]
            ],
            "upstreamtokens": [[_end(11)]],
        }
    )
    task, first = await _run(kube, cache)
    await asyncio.wait_for(first.wait(), 5)

    def user_calls() -> list[tuple[str, str, dict[str, str]]]:
        return [c for c in kube.calls if c[0] == "poolusers"]

    async def caught_up() -> bool:
        return len(user_calls()) == 2  # the first call ran out: the watch called again

    await async_wait_for(caught_up, timeout=5, what="the second watch call")
    assert cache.synced == {KIND_USER, KIND_UPSTREAM}
    assert cache.get((KIND_USER, "ghost")) is None and cache.get((KIND_USER, "bob")) is None
    alice = cache.get((KIND_USER, "alice"))
    assert alice is not None and (alice.resource_version, alice.uid) == ("12", "uid-alice")
    assert alice.figures.total_requests == 5
    first_call, again = user_calls()
    assert first_call[2]["sendInitialEvents"] == "true" and first_call[1] == ""
    assert again[1] == "14"  # the next call goes on from the last version
    task.cancel()


async def test_no_watch_list_means_list_and_watch() -> None:
    cache = StatusCache()
    refused = KubeError(422, "Invalid", "sendInitialEvents is forbidden for watch")
    page = {"metadata": {"resourceVersion": "20"}, "items": [_obj("alice", 19, 7)]}
    kube = ScriptedKube(
        {
            "poolusers": [refused, [{"type": "MODIFIED", "object": _obj("alice", 21, 8)}]],
            "upstreamtokens": [refused],
        },
        {"poolusers": [page], "upstreamtokens": [{"metadata": {"resourceVersion": "20"}, "items": []}]},
    )
    task, first = await _run(kube, cache)
    await asyncio.wait_for(first.wait(), 5)

    async def modified() -> bool:
        figures = cache.figures((KIND_USER, "alice"))
        return figures is not None and figures.total_requests == 8

    await async_wait_for(modified, timeout=5, what="the change after the list")
    plain = [c for c in kube.calls if c[0] == "poolusers"][1]
    assert plain[1] == "20" and "sendInitialEvents" not in plain[2]
    task.cancel()


async def test_an_unreachable_api_server_does_not_block_the_start_and_is_retried() -> None:
    cache = StatusCache()
    down = OSError("connection refused")
    kube = ScriptedKube({"poolusers": [down, down, [_end(3)]], "upstreamtokens": [down, [_end(3)]]})
    task, first = await _run(kube, cache)
    await asyncio.wait_for(first.wait(), 5)  # set by the failures: serving does not wait for it

    async def synced() -> bool:
        return cache.synced == {KIND_USER, KIND_UPSTREAM}

    await async_wait_for(synced, timeout=5, what="the watch after the retries")
    task.cancel()


def _stored(name: str, rv: int) -> Any:
    from tokenpool_proxy.usage.store import stored_of

    return stored_of(_obj(name, rv))
