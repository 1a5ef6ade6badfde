"""The chat path in-process (ASGI) against the real fake-upstream server: conversion on the wire,
streaming, failover for every fault kind, caps and bad input → documented 4xx (time limits and
clients leaving: test_proxy_time_limits.py)."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.support.chat_pool import MSGS, PT, augment_pool, sdk
from tests.support.proxy_routes import upstream_route, user_route
from tests.support.waiting import async_wait_for


async def test_non_stream_with_the_openai_sdk_and_the_wire_format(inprocess_proxy, fake_upstream):
    fake_upstream.configure(text="Hello there, world!", chunks=4)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    assert out.choices[0].message.content == "Hello there, world!"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == 5 and out.usage.prompt_tokens > 0
    [req] = fake_upstream.requests()
    assert req["path"] == "/t0/chat-stream" and req["token"] == "tok0"
    h = req["headers"]
    assert h["x-api-version"] == "2" and h["user-agent"].startswith("Augment.vscode-augment/")
    assert len(h["x-request-id"]) == 36 and len(h["x-request-session-id"]) == 36
    body = req["body"]
    assert (body["message"], body["user_guidelines"], body["mode"]) == ("q2", "Be brief.", "CHAT")
    assert [(i["request_message"], i["response_text"]) for i in body["chat_history"]] == [("q1", "a1")]


async def test_stream_with_the_openai_sdk_and_usage(inprocess_proxy, fake_upstream):
    fake_upstream.configure(text="abcdefghij", chunks=5, stop="done")
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    stream = await sdk(proxy).chat.completions.create(
        model="augment-agent", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abcdefghij"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3  # same estimate as non-stream: ceil(10/4)
    assert fake_upstream.requests()[0]["body"]["mode"] == "AGENT"


async def test_stream_that_just_ends_is_still_an_answer(inprocess_proxy, fake_upstream):
    fake_upstream.configure(text="tail", chunks=2, stop="eof")
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    assert out.choices[0].message.content == "tail"


FAULTS = [
    ("unauthorized", {}, "Unauthorized", "unhealthy"),
    ("rate_limited", {"retry_after": 30}, "RateLimited", "cooldown"),
    ("malformed", {"after_chunks": 0}, "MalformedAnswer", "cooldown"),
    ("server_error", {"status": 503}, "ServerError", "cooldown"),
    ("drop", {"after_chunks": 0}, "ConnectError", "cooldown"),
    ("hang", {}, "Timeout", "cooldown"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize(("fault", "spec", "reason", "verdict"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_failover_one_bad_token_of_three(
    inprocess_proxy, fake_upstream, fault, spec, reason, verdict, stream
):
    # The idle gap only has to catch "hang": generous, so a slow healthy answer on a loaded
    # machine never puts a good token into a cool-down.
    proxy = await augment_pool(inprocess_proxy, fake_upstream, read_timeout_seconds=2)
    fake_upstream.fault("tok1", fault, **spec)
    client = sdk(proxy)
    for _ in range(6):
        if stream:
            s = await client.chat.completions.create(model="augment-chat", messages=MSGS, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
        else:
            text = (
                (await client.chat.completions.create(model="augment-chat", messages=MSGS))
                .choices[0]
                .message.content
            )
        assert text == "Hello from the fake Augment upstream."
    stats = fake_upstream.stats()
    assert stats["tok1"]["requests"] == 1, "the bad token must be avoided after its failure"
    assert stats["tok0"]["requests"] + stats["tok2"]["requests"] == 6
    state = proxy.svc.health.get("t1")
    if verdict == "unhealthy":
        assert state.unhealthy_reason == reason
    else:
        assert state.cooldown_reason == reason and state.cooling(proxy.svc.health.clock())
    if reason == "RateLimited":
        assert state.cooldown_until - proxy.svc.health.clock() > 25  # Retry-After respected


NOTICES = [
    ("suspended", "Suspended", "unhealthy"),  # HTTP 403 with the suspension notice
    ("suspended_in_stream", "Suspended", "unhealthy"),  # the notice as a whole 200 answer
    ("blocked", "Blocked", "cooldown"),
]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize(("fault", "reason", "verdict"), NOTICES, ids=[f[0] for f in NOTICES])
async def test_account_notice_is_confirmed_by_a_probe_and_not_failed_over(
    inprocess_proxy, fake_upstream, fault, reason, verdict, stream
):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, blocked_cooldown_seconds=600)
    fake_upstream.fault("tok1", fault)
    client = sdk(proxy)
    refused = 0
    for _ in range(6):
        try:
            if stream:
                s = await client.chat.completions.create(model="augment-chat", messages=MSGS, stream=True)
                text = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
            else:
                out = await client.chat.completions.create(model="augment-chat", messages=MSGS)
                text = out.choices[0].message.content
            assert text == "Hello from the fake Augment upstream."
        except openai.APIStatusError as exc:
            assert exc.status_code == 502 and exc.body["code"] == "upstream_notice", exc.body
            assert "not retried on another token" in exc.body["message"]
            refused += 1
    assert refused == 1  # the prompt was not sent to another account; later ones avoid tok1
    stats = fake_upstream.stats()
    assert stats["tok1"]["requests"] == 2, "the request, then one probe without user text"
    probe = [r for r in fake_upstream.requests() if r["token"] == "tok1"][-1]
    assert probe["body"]["message"] == "Reply with the single word OK."
    state = proxy.svc.health.get("t1")
    if verdict == "unhealthy":
        assert state.unhealthy_reason == reason
    else:
        assert state.cooldown_reason == reason and state.cooldown_until - proxy.svc.health.clock() > 590


NOTICE_TEXTS = [
    "Request blocked. Please reach out to support@augmentcode.com if you think this was a mistake.",
    "Your account has been suspended because of unusual activity.",
    "Your subscription for account someone@example.com is inactive.",
    "Your access has been restricted.",
    "You are out of user messages for account someone@example.com.",
    "You have run out of credits.",
]


@pytest.mark.parametrize(
    "text", NOTICE_TEXTS, ids=["blocked", "suspended", "inactive", "restricted", "messages", "credits"]
)
@pytest.mark.parametrize("chunks", [1, 3])
async def test_a_prompt_that_makes_the_model_say_a_notice_changes_no_health(
    inprocess_proxy, fake_upstream, text, chunks
):
    """The fake upstream echoes the prompt: a user asking the model to say a notice gets it back
    as the answer, and no token's health changes (at most one probe per token per ttl)."""
    fake_upstream.configure(echo=True, chunks=chunks)
    proxy = await augment_pool(inprocess_proxy, fake_upstream)
    client = sdk(proxy)
    for i in range(4):
        messages = [{"role": "user", "content": text}]
        if i % 2:
            s = await client.chat.completions.create(model="augment-chat", messages=messages, stream=True)
            answer = "".join([c.choices[0].delta.content or "" async for c in s if c.choices])
        else:
            answer = (
                (await client.chat.completions.create(model="augment-chat", messages=messages))
                .choices[0]
                .message.content
            )
        assert answer == text
    for name in ("t0", "t1", "t2"):
        state = proxy.svc.health.get(name)
        assert state.unhealthy_reason is None and not state.cooling(proxy.svc.health.clock())
        assert state.consecutive_failures == 0
    probes = [
        r for r in fake_upstream.requests() if r["body"].get("message") == "Reply with the single word OK."
    ]
    assert len(probes) == (3 if chunks == 1 else 0)  # one per token at most; none if not notice-shaped
    assert len(probes) == proxy.svc.notices.probes


async def test_upstream_rejecting_the_request_is_the_clients_4xx_without_failover(
    inprocess_proxy, fake_upstream
):
    proxy = await augment_pool(inprocess_proxy, fake_upstream)
    for token in ("tok0", "tok1", "tok2"):
        fake_upstream.fault(token, "server_error", status=413)
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    assert info.value.status_code == 413 and info.value.body["code"] == "upstream_rejected"
    assert sum(s["requests"] for s in fake_upstream.stats().values()) == 1  # no failover
    assert all(proxy.svc.health.routable(r) for r in proxy.svc.index.upstreams())  # no health effect


async def test_bad_requests_never_lease_a_token(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream)
    auth = {"Authorization": f"Bearer {PT}"}
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    for body, code in (
        ({"model": "augment-chat", "messages": image}, "unsupported_content"),
        ({"model": "augment-chat", "messages": [{"role": "assistant", "content": "x"}]}, "invalid_messages"),
        ({"model": "augment-chat", "messages": MSGS, "n": 2}, "unsupported_parameter"),
    ):
        r = await proxy.client.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert fake_upstream.requests() == []
    assert all(proxy.svc.health.get(u.name).last_started < 0 for u in proxy.svc.index.upstreams())


async def test_mid_stream_failure_ends_the_stream_with_an_error_event(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    fake_upstream.fault("tok0", "drop", after_chunks=2)
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": MSGS, "stream": True},
    )
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    assert '"role":"assistant"' in events[0]
    assert '"error"' in events[-2] and "ConnectError" in events[-2]
    assert events[-1] == "data: [DONE]"
    with pytest.raises(openai.APIError):
        s = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS, stream=True)
        [c async for c in s]


async def test_every_token_failing_is_a_502_and_then_503_while_resting(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2)
    for tok in ("tok0", "tok1"):
        fake_upstream.fault(tok, "server_error")
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": MSGS},
    )
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": MSGS},
    )
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "upstreams_unavailable"


async def test_concurrency_cap_holds_under_parallel_load(inprocess_proxy, fake_upstream):
    fake_upstream.configure(delay_ms=20, chunks=3)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2, slot_wait_seconds=10)
    client = sdk(proxy)
    results = await asyncio.gather(
        *[client.chat.completions.create(model="augment-chat", messages=MSGS) for _ in range(8)]
    )
    assert all(r.choices[0].message.content for r in results)
    stats = fake_upstream.stats()
    assert stats["tok0"]["max_in_flight"] == 1 and stats["tok1"]["max_in_flight"] == 1
    assert stats["tok0"]["requests"] + stats["tok1"]["requests"] == 8


async def test_busy_pool_answers_429_with_retry_after(inprocess_proxy, fake_upstream):
    fake_upstream.configure(delay_ms=300, chunks=2)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1, slot_wait_seconds=0.05)
    h = {"Authorization": f"Bearer {PT}"}
    body = {"model": "augment-chat", "messages": MSGS}
    slow = asyncio.create_task(proxy.client.post("/v1/chat/completions", headers=h, json=body))
    await async_wait_for(lambda: _in_flight(proxy, "t0"), what="first request holds the slot")
    r = await proxy.client.post("/v1/chat/completions", headers=h, json=body)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert (await slow).status_code == 200


async def _in_flight(proxy, name):
    return proxy.svc.health.get(name).in_flight > 0


BAD = [
    (b"{not json", 400, "invalid_json"),
    (b'{"model":"augment-chat"}', 400, None),
    (b'{"model":"augment-chat","messages":[{"role":"user","content":5}]}', 400, None),
    (b'{"model":"augment-chat","messages":[{"role":"user","content":"x"}],"max_tokens":"many"}', 400, None),
    (b'{"model":"nope","messages":[{"role":"user","content":"x"}]}', 404, "model_not_found"),
    (b'{"model":"augment-chat","messages":[{"role":"assistant","content":"x"}]}', 400, "invalid_messages"),
    (
        b'{"model":"augment-chat","messages":[{"role":"user","content":[{"type":"image_url"}]}]}',
        400,
        "unsupported_content",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD)
async def test_bad_input_is_a_documented_4xx(inprocess_proxy, fake_upstream, body, status, code):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    r = await proxy.client.post(
        "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {PT}", "Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"} and err["message"]
    if code:
        assert err["code"] == code
    assert fake_upstream.requests() == []


async def test_auth_and_size_errors(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1, max_body_bytes=1000)
    ok = {"model": "augment-chat", "messages": MSGS}
    r = await proxy.client.post("/v1/chat/completions", json=ok)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = await proxy.client.post(
        "/v1/chat/completions", json=ok, headers={"Authorization": "Bearer " + "0" * 64}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    huge = {"model": "augment-chat", "messages": [{"role": "user", "content": "x" * 5000}]}
    r = await proxy.client.post("/v1/chat/completions", json=huge, headers={"Authorization": f"Bearer {PT}"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    async def chunked():
        for _ in range(10):
            yield b"x" * 500

    r = await proxy.client.post(
        "/v1/chat/completions", content=chunked(), headers={"Authorization": f"Bearer {PT}"}
    )
    assert r.status_code == 413
    r = await proxy.client.get("/v1/models", headers={"Authorization": f"Bearer {PT}"})
    assert [m["id"] for m in r.json()["data"]] == ["augment-chat", "augment-agent"]
    r = await proxy.client.get("/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()


async def test_user_without_tokens_for_the_model_gets_403(inprocess_proxy, fake_upstream):
    proxy = await inprocess_proxy(users=[user_route("alice", PT, [])])
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": MSGS},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_allocated_tokens"


async def test_openai_compatible_upstream_pass_through(inprocess_proxy, fake_upstream):
    from tokenpool_proxy.settings import ModelSpec

    fake_upstream.configure(text="passed through", chunks=3)
    ups = [
        upstream_route(f"o{i}", fake_upstream.url + f"o{i}/v1/", token=f"sk-{i}", provider="OpenAI")
        for i in (1, 2)
    ]
    proxy = await inprocess_proxy(
        users=[user_route("alice", PT, ["o1", "o2"])],
        upstreams=ups,
        models=(ModelSpec(id="gpt-x", provider="OpenAI", upstream_model="upstream-x"),),
    )
    fake_upstream.fault("sk-1", "unauthorized")
    client = sdk(proxy)
    out = await client.chat.completions.create(model="gpt-x", messages=MSGS, temperature=0.2)
    assert out.choices[0].message.content == "passed through" and out.model == "gpt-x"
    assert out.usage.prompt_tokens == 11 and out.usage.completion_tokens == 7  # the upstream's own figures
    stream = await client.chat.completions.create(model="gpt-x", messages=MSGS, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "passed through"
    sent = next(r for r in fake_upstream.requests() if r["token"] == "sk-2")
    assert sent["path"] == "/o2/v1/chat/completions"
    assert sent["body"]["model"] == "upstream-x" and sent["body"]["temperature"] == 0.2
    assert sent["body"]["stream"] is True and sent["body"]["messages"] == MSGS
    assert proxy.svc.health.get("o1").unhealthy_reason == "Unauthorized"
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": MSGS},
    )
    assert r.status_code == 404  # not in this deployment's model list


async def test_a_failover_is_one_error_on_a_one_success_on_b_and_one_request_for_the_user(
    inprocess_proxy, fake_upstream
):
    """The documented counting rule (docs/usage.md), through the real chat route and usage service."""
    from tokenpool_proxy.usage.counters import upstream_key

    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2)
    fake_upstream.fault("tok0", "server_error", status=503)
    out = await sdk(proxy).chat.completions.create(model="augment-chat", messages=MSGS)
    assert out.choices[0].message.content == "Hello from the fake Augment upstream."
    usage = proxy.svc.usage
    user = usage.user_usage("alice")
    a, b = (usage.view(upstream_key(n), per_upstream=False) for n in ("t0", "t1"))
    assert (user.total.requests, user.total.successes, user.total.errors) == (1, 1, 0)
    assert (a.total.requests, a.total.successes, a.total.errors) == (1, 0, 1)
    assert (b.total.requests, b.total.successes, b.total.errors) == (1, 1, 0)
    lines = {u.name: (u.requests, u.successes, u.errors) for u in user.today_by_upstream or ()}
    assert lines == {"t0": (1, 0, 1), "t1": (1, 1, 0)}
    assert user.total.completion_tokens == b.total.completion_tokens == out.usage.completion_tokens
