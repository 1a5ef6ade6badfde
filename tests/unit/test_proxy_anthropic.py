"""The Anthropic Messages API with the official ``anthropic`` SDK over real HTTP: agent loops
(tool use → tool result → final answer, stream and non-stream, parallel calls) over Augment and
over an Anthropic-compatible upstream, failover on the first attempt, count_tokens, models,
images, and errors in Anthropic's shape."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route

PT = new_personal_token()
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]
ASK = 'What is it like? call get_weather {"city": "Paris"} and call get_time {"tz": "CET"}'
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-a-png").decode()


async def serve_pool(inprocess_proxy, fake, provider: str, n: int = 1) -> tuple[Any, str, str]:
    """(proxy, base URL, model id) with ``n`` tokens of ``provider`` (augment | anthropic)."""
    from tokenpool_proxy.settings import ModelSpec

    if provider == "augment":
        ups = [upstream_route(f"t{i}", fake.tenant(f"t{i}"), token=f"tok{i}") for i in range(n)]
        models, model = (ModelSpec(id="claude-via-augment"),), "claude-via-augment"
    else:
        ups = [
            upstream_route(f"a{i}", fake.url + f"a{i}", token=f"ak-{i}", provider="Anthropic")
            for i in range(n)
        ]
        models = (ModelSpec(id="claude-x", provider="Anthropic", upstream_model="upstream-claude"),)
        model = "claude-x"
    proxy = await inprocess_proxy(
        users=[user_route("alice", PT, [u.name for u in ups])],
        upstreams=ups,
        anthropic_models=models,
        cooldown_base_seconds=60,
    )
    return proxy, await proxy.serve(), model


def sdk(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=PT, max_retries=0)


async def ask(client: anthropic.AsyncAnthropic, model: str, messages: list[Any], stream: bool) -> Any:
    args = {"model": model, "max_tokens": 1024, "messages": messages, "tools": TOOLS}
    if not stream:
        return await client.messages.create(**args)
    async with client.messages.stream(**args) as s:
        async for _ in s:
            pass
        return await s.get_final_message()


def follow_up(first: Any) -> list[dict[str, Any]]:
    uses = [b for b in first.content if b.type == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"result of {u.name}"} for u in uses]
    return [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": results},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("provider", ["augment", "anthropic"])
async def test_agent_loop_with_parallel_tool_calls(inprocess_proxy, fake_upstream, provider, stream):
    fake_upstream.configure(preamble="Let me look.")
    _, url, model = await serve_pool(inprocess_proxy, fake_upstream, provider)
    client = sdk(url)
    first = await ask(client, model, [{"role": "user", "content": ASK}], stream)
    assert first.stop_reason == "tool_use" and first.model == model
    assert [b.type for b in first.content] == ["text", "tool_use", "tool_use"]
    assert first.content[0].text == "Let me look."
    uses = first.content[1:]
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert all(u.id for u in uses) and uses[0].id != uses[1].id

    final = await ask(client, model, follow_up(first), stream)
    assert final.stop_reason == "end_turn"
    assert [b.type for b in final.content] == ["text"]
    expected = f"Tool results: {uses[0].id}=result of get_weather; {uses[1].id}=result of get_time"
    assert final.content[0].text == expected
    if provider == "anthropic":
        assert (final.usage.input_tokens, final.usage.output_tokens) == (17, 5)  # the upstream's own
        return
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == (len(expected) + 3) // 4
    body = fake_upstream.requests()[1]["body"]
    assert body["mode"] == "AGENT" and [d["name"] for d in body["tool_definitions"]] == [
        "get_weather",
        "get_time",
    ]
    assert [n["tool_result_node"]["tool_use_id"] for n in body["nodes"]] == [u.id for u in uses]
    [turn] = body["chat_history"]
    assert turn["response_text"] == "Let me look."
    assert [n["tool_use"]["input_json"] for n in turn["response_nodes"] if n["type"] == 5] == [
        '{"city":"Paris"}',
        '{"tz":"CET"}',
    ]


async def test_pass_through_forwards_the_request_and_the_anthropic_headers(inprocess_proxy, fake_upstream):
    _, url, model = await serve_pool(inprocess_proxy, fake_upstream, "anthropic")
    client = anthropic.AsyncAnthropic(
        base_url=url,
        api_key=PT,
        max_retries=0,
        default_headers={
            "anthropic-beta": "interleaved-thinking-2025-05-14",
            "anthropic-version": "2023-06-01",
        },
    )
    out = await client.messages.create(
        model=model,
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
        metadata={"user_id": "u-1"},
        stop_sequences=["END"],
        extra_body={"temperature": 0.3},
    )
    assert out.content[0].text == "Hello from the fake Augment upstream." and out.model == model
    [sent] = fake_upstream.requests()
    assert sent["path"] == "/a0/v1/messages" and sent["token"] == "ak-0"
    assert sent["headers"]["x-api-key"] == "ak-0" and sent["headers"]["authorization"] == "Bearer ak-0"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    body = sent["body"]
    assert body["model"] == "upstream-claude" and body["stream"] is True
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert (body["metadata"], body["stop_sequences"], body["temperature"]) == (
        {"user_id": "u-1"},
        ["END"],
        0.3,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize(
    ("provider", "first_token", "fault"),
    [
        ("augment", "tok0", "server_error"),
        ("anthropic", "ak-0", "server_error"),
        ("anthropic", "ak-0", "overloaded_in_stream"),
    ],
)
async def test_failover_on_the_first_attempt(
    inprocess_proxy, fake_upstream, provider, first_token, fault, stream
):
    proxy, url, model = await serve_pool(inprocess_proxy, fake_upstream, provider, n=2)
    fake_upstream.fault(first_token, fault)  # the balancer's first pick (ties: compiled order)
    first = await ask(sdk(url), model, [{"role": "user", "content": ASK}], stream)
    assert first.stop_reason == "tool_use" and [b.type for b in first.content] == ["tool_use", "tool_use"]
    stats = fake_upstream.stats()
    assert stats[first_token]["requests"] == 1 and sum(s["requests"] for s in stats.values()) == 2
    name = "t0" if provider == "augment" else "a0"
    assert proxy.svc.health.get(name).cooldown_reason == "ServerError"


async def test_count_tokens_and_models(inprocess_proxy, fake_upstream):
    _, url, model = await serve_pool(inprocess_proxy, fake_upstream, "augment")
    client = sdk(url)
    small = await client.messages.count_tokens(model=model, messages=[{"role": "user", "content": "hi"}])
    big = await client.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "hi"}], tools=TOOLS
    )
    assert 0 < small.input_tokens < big.input_tokens
    page = await client.models.list()
    assert [m.id for m in page.data] == [model]
    assert fake_upstream.requests() == []  # counted and listed by the proxy itself


async def test_images_and_tool_result_images_become_nodes(inprocess_proxy, fake_upstream):
    _, url, model = await serve_pool(inprocess_proxy, fake_upstream, "augment")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, image]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [image]}]},
    ]
    out = await sdk(url).messages.create(model=model, max_tokens=10, messages=messages, tools=TOOLS)
    assert out.content[0].text == "Tool results: toolu_1="
    body = fake_upstream.requests()[0]["body"]
    assert body["chat_history"][0]["request_nodes"] == [
        {"id": 0, "type": 2, "image_node": {"image_data": PNG, "format": 1}}
    ]
    [node] = body["nodes"]
    assert node["tool_result_node"]["content_nodes"] == [
        {"type": 2, "image_content": {"image_data": PNG, "format": 1}}
    ]


BAD = [
    ({"model": "claude-via-augment", "messages": [{"role": "user", "content": "x"}]}, 400, "max_tokens"),
    ({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, 404, "nope"),
    ({"model": "claude-via-augment", "max_tokens": 5, "messages": []}, 400, "messages"),
    (
        {
            "model": "claude-via-augment",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text"}]}],
        },
        400,
        "text",
    ),
    (
        {
            "model": "claude-via-augment",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],
        },
        400,
        "document",
    ),
    (
        {"model": "claude-via-augment", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
        400,
        "user",
    ),
]


@pytest.mark.parametrize(("body", "status", "needle"), BAD)
async def test_bad_requests_get_anthropic_errors(inprocess_proxy, fake_upstream, body, status, needle):
    proxy, _, _ = await serve_pool(inprocess_proxy, fake_upstream, "augment")
    r = await proxy.client.post("/v1/messages", headers={"x-api-key": PT}, json=body)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["type"] == "error" and needle in error["error"]["message"]
    assert error["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert fake_upstream.requests() == []


async def test_auth_and_size_errors_in_anthropic_shape(inprocess_proxy, fake_upstream):
    proxy, url, model = await serve_pool(inprocess_proxy, fake_upstream, "augment")
    ok = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    r = await proxy.client.post("/v1/messages", json=ok)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = await proxy.client.post("/v1/messages", json=ok, headers={"x-api-key": "0" * 64})
    assert r.status_code == 401 and r.json()["type"] == "error"
    r = await proxy.client.post("/v1/messages", json=ok, headers={"Authorization": f"Bearer {PT}"})
    assert r.status_code == 200, "a Bearer personal token works as well (ANTHROPIC_AUTH_TOKEN)"
    huge = {**ok, "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    r = await proxy.client.post("/v1/messages", json=huge, headers={"x-api-key": PT})
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    with pytest.raises(anthropic.AuthenticationError):
        await anthropic.AsyncAnthropic(base_url=url, api_key="wrong", max_retries=0).messages.create(**ok)
    r = await proxy.client.options("/v1/messages")  # a browser's preflight
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert r.status_code == 204 and {"x-api-key", "anthropic-version", "anthropic-beta"} <= allowed


async def test_everything_failing_is_an_anthropic_error_with_the_pool_status(inprocess_proxy, fake_upstream):
    _, url, model = await serve_pool(inprocess_proxy, fake_upstream, "anthropic", n=1)
    fake_upstream.fault("ak-0", "server_error")
    async with httpx.AsyncClient(base_url=url) as client:
        ok = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        r = await client.post("/v1/messages", json=ok, headers={"x-api-key": PT})
        assert r.status_code == 502 and r.json()["error"]["type"] == "api_error"
        r = await client.post("/v1/messages", json=ok, headers={"x-api-key": PT})
        assert r.status_code == 503 and r.json()["error"]["type"] == "overloaded_error"
        assert int(r.headers["retry-after"]) >= 1 and r.json()["request_id"]


def test_settings_keep_pass_through_models_on_the_api_of_their_dialect():
    from pydantic import ValidationError
    from tokenpool_proxy.settings import ModelSpec, ProxySettings

    with pytest.raises(ValidationError, match="models: model 'c' of provider Anthropic"):
        ProxySettings(models=(ModelSpec(id="c", provider="Anthropic"),))
    with pytest.raises(ValidationError, match="anthropic_models: model 'g' of provider OpenAI"):
        ProxySettings(anthropic_models=(ModelSpec(id="g", provider="OpenAI"),))


async def test_a_stream_cut_after_its_first_event_ends_with_an_error_event(inprocess_proxy, fake_upstream):
    proxy, url, model = await serve_pool(inprocess_proxy, fake_upstream, "anthropic")
    fake_upstream.fault("ak-0", "drop", after_chunks=4)  # message_start, block start, ping, a delta
    body = {"model": model, "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    r = await proxy.client.post("/v1/messages", json=body, headers={"x-api-key": PT})
    assert r.status_code == 200
    names = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "error"]
    assert '"type":"api_error"' in r.text.rsplit("event: error", 1)[1]
    with pytest.raises(anthropic.APIStatusError):
        async with sdk(url).messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as s:
            await s.get_final_message()
    assert proxy.svc.health.get("a0").cooldown_reason == "ConnectError"


@pytest.mark.parametrize(
    ("status", "text", "verdict", "reason"),
    [
        (401, '{"type":"error","error":{"type":"authentication_error"}}', "unhealthy", "Unauthorized"),
        (400, "Your credit balance is too low to access the Anthropic API.", "unhealthy", "OutOfCredits"),
        (429, "rate_limit_error", "cooldown", "RateLimited"),
        (529, "overloaded_error", "cooldown", "ServerError"),
        # The request itself is refused: the client's 4xx, no failover, no health effect.
        (400, "invalid_request_error: prompt is too long", "reject", "RequestRejected"),
        (402, "payment required", "fail", "ClientError"),
    ],
)
def test_anthropic_upstream_failures_are_classified(status, text, verdict, reason):
    from tokenpool_proxy.providers.anthropic_compat import classify_anthropic_failure

    failure = classify_anthropic_failure(status, text, "7")
    assert (failure.verdict, failure.reason) == (verdict, reason)
    assert failure.retry_after == (7 if reason == "RateLimited" else None)
