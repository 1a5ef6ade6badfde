"""The chat path's time limits and clients that leave, in-process against the real fake-upstream
server: the idle gap between two bytes of an answer and the overall deadline (before and after the
first byte: failover, or an error event that ends the stream), oversized answer lines, and a
client going away (slot and upstream connection freed, the attempt counted)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tests.support.chat_pool import MSGS, PT, augment_pool, sdk
from tests.support.waiting import async_wait_for


async def test_client_disconnect_cancels_upstream_and_frees_the_slot(inprocess_proxy, fake_upstream):
    fake_upstream.configure(delay_ms=10_000, chunks=3)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    url = await proxy.serve()
    async with (
        httpx.AsyncClient(base_url=url) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {PT}"},
            json={"model": "augment-chat", "messages": MSGS, "stream": True},
        ) as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                break
        assert proxy.svc.health.get("t0").in_flight == 1
        assert fake_upstream.stats()["tok0"]["in_flight"] == 1
    # The client went away during a 10 s silence of the upstream: both sides are freed now.
    await async_wait_for(lambda: _free(proxy, fake_upstream), timeout=5, what="slot and upstream freed")


async def _free(proxy, fake):
    return proxy.svc.health.get("t0").in_flight == 0 and fake.stats()["tok0"]["in_flight"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream-before-first-byte"])
async def test_client_leaving_while_the_upstream_is_silent_frees_everything(
    inprocess_proxy, fake_upstream, stream
):
    fake_upstream.configure(first_delay_ms=10_000)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    url = await proxy.serve()
    async with httpx.AsyncClient(base_url=url) as client:
        request = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {PT}"},
            json={"model": "augment-chat", "messages": MSGS, "stream": stream},
            timeout=0.5,
        )
        waiting = asyncio.ensure_future(request)
        await async_wait_for(lambda: _upstream_busy(fake_upstream), what="request reached the upstream")
        with pytest.raises(httpx.ReadTimeout):
            await waiting  # the client gives up and closes its connection
    await async_wait_for(lambda: _free(proxy, fake_upstream), timeout=5, what="slot and upstream freed")
    assert proxy.svc.usage.upstream_counter("t0").count == 1  # the attempt is counted all the same
    assert proxy.svc.metrics.attempts.labels("t0", "ClientClosed")._value.get() == 1


async def test_client_leaving_mid_stream_is_counted(inprocess_proxy, fake_upstream):
    fake_upstream.configure(chunks=4, delay_ms=3_000)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    url = await proxy.serve()
    async with httpx.AsyncClient(base_url=url) as client:
        body = {"model": "augment-chat", "messages": MSGS, "stream": True}
        async with client.stream(
            "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {PT}"}, json=body
        ) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    break  # the first chunk arrived: leave
    await async_wait_for(lambda: _free(proxy, fake_upstream), timeout=5, what="slot and upstream freed")
    assert proxy.svc.usage.upstream_counter("t0").count == 1
    assert proxy.svc.metrics.attempts.labels("t0", "ClientClosed")._value.get() == 1


async def test_every_upstream_call_has_an_overall_deadline(inprocess_proxy, fake_upstream):
    """A slow but never silent answer (a line every 0.3 s, below the idle gap) ends at the
    deadline: 504, not retried elsewhere, and no verdict on the token."""
    fake_upstream.configure(chunks=20, delay_ms=300)
    proxy = await augment_pool(
        inprocess_proxy, fake_upstream, n=2, read_timeout_seconds=2, upstream_deadline_seconds=1
    )
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_deadline_exceeded"
    assert sum(s["requests"] for s in fake_upstream.stats().values()) == 1
    assert all(proxy.svc.health.routable(r) for r in proxy.svc.index.upstreams())


async def test_an_upstream_silent_mid_stream_is_cut_after_the_idle_gap(inprocess_proxy, fake_upstream):
    """Two lines, then silence with the connection open: once the upstream has been silent for
    ``read_timeout_seconds`` (not before) the stream ends with the documented error event, the
    token rests (``Timeout``) and the attempt counts as an error."""
    gap = 1.0
    fake_upstream.configure(text="abcdefgh", chunks=4)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1, read_timeout_seconds=gap)
    fake_upstream.fault("tok0", "stall", after_chunks=2)
    url = await proxy.serve()
    events: list[tuple[float, str]] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = {"model": "augment-chat", "messages": MSGS, "stream": True}
        async with client.stream(
            "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {PT}"}, json=body
        ) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events.append((time.perf_counter(), line[5:].strip()))
    payloads = [json.loads(data) for _, data in events[:-1]]
    assert events[-1][1] == "[DONE]"
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads[:-1]) == "abcd"
    assert payloads[-1]["error"]["code"] == "upstream_stream_failed"
    assert "(Timeout)" in payloads[-1]["error"]["message"]
    silent_for = events[-2][0] - events[-3][0]  # last text chunk -> error event, at the client
    print(f"stream cut {silent_for:.3f} s after its last chunk (idle gap {gap} s)")
    assert gap - 0.05 <= silent_for < gap + 5
    state = proxy.svc.health.get("t0")
    assert state.cooldown_reason == "Timeout" and state.cooling(proxy.svc.health.clock())
    assert proxy.svc.metrics.attempts.labels("t0", "Timeout")._value.get() == 1


async def test_an_upstream_silent_mid_answer_fails_over_when_nothing_was_sent(inprocess_proxy, fake_upstream):
    """A non-streamed answer is gathered whole: silence after two lines fails over to another
    token, and the silent one rests (``Timeout``)."""
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2, read_timeout_seconds=1)
    fake_upstream.fault("tok1", "stall", after_chunks=2)
    for _ in range(3):
        out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
        assert out.choices[0].message.content == "Hello from the fake Augment upstream."
    assert fake_upstream.stats()["tok1"]["requests"] == 1
    assert proxy.svc.health.get("t1").cooldown_reason == "Timeout"


async def test_an_oversized_answer_line_fails_over_as_a_malformed_answer(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2)
    huge = '{"text":"' + "a" * 600_000 + '"}'
    fake_upstream.fault("tok1", raw_lines=['{"text":"x"}', huge, '{"text":"","stop_reason":1}'])
    for _ in range(3):
        out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
        assert out.choices[0].message.content == "Hello from the fake Augment upstream."
    assert fake_upstream.stats()["tok1"]["requests"] == 1
    assert proxy.svc.health.get("t1").cooldown_reason == "MalformedAnswer"


async def test_a_slow_answer_whose_gaps_are_short_is_not_cut(inprocess_proxy, fake_upstream):
    """Eight lines 0.25 s apart take longer than the idle gap (1 s) in all: the gap is between
    two bytes, not the answer's length."""
    fake_upstream.configure(text="abcdefgh", chunks=8, delay_ms=250)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1, read_timeout_seconds=1)
    started = time.perf_counter()
    out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    print(f"answer took {time.perf_counter() - started:.2f} s (idle gap 1 s)")
    assert out.choices[0].message.content == "abcdefgh"
    assert proxy.svc.health.routable(proxy.svc.index.upstreams()[0])


async def test_a_stream_past_the_overall_deadline_ends_with_an_error_event(inprocess_proxy, fake_upstream):
    """The same deadline once the stream is committed: the stream ends with the documented error
    event, and the token gets no verdict."""
    fake_upstream.configure(chunks=20, delay_ms=300)
    proxy = await augment_pool(
        inprocess_proxy, fake_upstream, n=1, read_timeout_seconds=2, upstream_deadline_seconds=1
    )
    stream = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS, stream=True)
    with pytest.raises(openai.APIError) as info:
        async for _ in stream:
            pass
    assert "(DeadlineExceeded)" in str(info.value)
    assert proxy.svc.health.routable(proxy.svc.index.upstreams()[0])


async def _upstream_busy(fake):
    return fake.stats().get("tok0", {}).get("in_flight") == 1
