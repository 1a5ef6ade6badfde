"""Operator metrics: the work queue and the writer count what they do, ``/metrics`` serves it."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST
from tokenpool_operator import liveness
from tokenpool_operator.reconcile_metrics import OperatorMetrics
from tokenpool_operator.workqueue import WorkQueue
from tokenpool_operator.writer import Writer

from tests.support.waiting import async_wait_for
from tokenpool.dev.controlplane import free_port
from tokenpool.kube.client import KubeError


def sample(m: OperatorMetrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


async def test_queue_counts_reconciles_by_kind_and_outcome() -> None:
    failed: set[Hashable] = set()

    async def handler(key: Hashable) -> None:
        if key[0] == "token" and key not in failed:  # type: ignore[index]
            failed.add(key)
            raise RuntimeError("boom")

    m = OperatorMetrics()
    q = WorkQueue(handler, workers=2, metrics=m, kind=lambda key: key[0])  # type: ignore[index]
    for key in [("user", "ns", "alice"), ("user", "ns", "bob"), ("token", "ns", "t1")]:
        q.add(key)
    q.start()
    await async_wait_for(
        lambda: _true(sample(m, "tokenpool_operator_reconciles_total", kind="token", outcome="success") == 1),
        timeout=5,
        what="token retried after backoff",
    )
    await q.stop()
    assert sample(m, "tokenpool_operator_reconciles_total", kind="user", outcome="success") == 2
    assert sample(m, "tokenpool_operator_reconciles_total", kind="token", outcome="error") == 1
    assert sample(m, "tokenpool_operator_reconcile_seconds_count", kind="user") == 2
    assert sample(m, "tokenpool_operator_reconcile_seconds_count", kind="token") == 2
    text = m.render(q.stats()).decode()
    assert "alice" not in text and "t1" not in text  # keys never become labels


class FakeKube:
    """Answers like the API: create conflicts for ``taken``, everything else succeeds."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] in self.taken:
            raise KubeError(409, "AlreadyExists")
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "2"}}

    async def get(self, path: str) -> dict[str, Any] | None:
        name = path.rsplit("/", 1)[1]
        return {"metadata": {"name": name}} if name in self.taken else None

    async def delete(self, path: str) -> None:
        return None

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body


async def test_writer_counts_writes_by_resource_and_verb() -> None:
    m = OperatorMetrics()
    writer = Writer(FakeKube({"raced"}), m)  # type: ignore[arg-type]
    obj = {"metadata": {"namespace": "ns", "name": "fresh"}}
    await writer.put("configmaps", obj, exists=False)
    await writer.put("configmaps", {"metadata": {"namespace": "ns", "name": "raced"}}, exists=False)
    await writer.put("secrets", obj, exists=True)
    await writer.delete("secrets", "ns", "fresh")
    body = {"kind": "PoolUser", "metadata": {"namespace": "ns", "name": "alice"}, "status": {}}
    assert await writer.patch_status("poolusers", body, {"allocatedTokens": 1})
    assert not await writer.patch_status("poolusers", body, {"allocatedTokens": 1})  # unchanged: no write
    await writer.event(body, "Warning", "QuotaAboveMaximum", "quota 99 above the maximum 10")

    assert sample(m, "tokenpool_operator_writes_total", resource="configmaps", verb="created") == 1
    # The create conflicted (cache behind): it became a replace and is counted as one.
    assert sample(m, "tokenpool_operator_writes_total", resource="configmaps", verb="updated") == 1
    assert sample(m, "tokenpool_operator_writes_total", resource="secrets", verb="updated") == 1
    assert sample(m, "tokenpool_operator_writes_total", resource="secrets", verb="deleted") == 1
    assert sample(m, "tokenpool_operator_writes_total", resource="poolusers", verb="patched") == 1
    assert sample(m, "tokenpool_operator_events_total", type="Warning", reason="QuotaAboveMaximum") == 1


async def test_metrics_endpoint_serves_the_registry_next_to_healthz() -> None:
    async def handler(key: Hashable) -> None:
        return None

    q = WorkQueue(handler, workers=1, kind=lambda key: str(key).split(":")[0])
    q.add("user:alice")
    port = free_port()
    runner = await liveness.serve(q, "127.0.0.1", port)  # not started: the item stays pending
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
                text = await resp.text()
            assert "tokenpool_operator_queue_pending 1.0" in text
            q.start()
            await async_wait_for(lambda: _true(q.pending() == 0), what="item processed")
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            assert "tokenpool_operator_queue_pending 0.0" in text
            assert 'tokenpool_operator_reconciles_total{kind="user",outcome="success"} 1.0' in text
            assert "alice" not in text
    finally:
        await q.stop()
        await runner.cleanup()


async def _true(value: bool) -> bool:
    return value
