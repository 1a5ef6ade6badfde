"""Agent loops with the official ``openai`` SDK: tool call → tool result → final answer, stream and
non-stream, over Augment (converted) and over an OpenAI-compatible upstream (relayed), with
parallel calls, failover on the first attempt, and images."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest

from tests.support.chat_pool import PT, augment_pool, sdk
from tests.support.proxy_routes import upstream_route, user_route

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
ASK = 'What is it like? call get_weather {"city": "Paris"} and call get_time {"tz": "CET"}'
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-a-png").decode()


async def openai_pool(inprocess_proxy, fake, n=2):
    from tokenpool_proxy.settings import ModelSpec

    ups = [
        upstream_route(f"o{i}", fake.url + f"o{i}/v1/", token=f"sk-{i}", provider="OpenAI") for i in range(n)
    ]
    return await inprocess_proxy(
        users=[user_route("alice", PT, [u.name for u in ups])],
        upstreams=ups,
        models=(ModelSpec(id="gpt-x", provider="OpenAI", upstream_model="upstream-x"),),
        cooldown_base_seconds=60,
    )


async def ask(client: openai.AsyncOpenAI, model: str, messages: list[Any], stream: bool) -> dict[str, Any]:
    """One completion as ``{"content", "tool_calls": [(id, name, arguments)], "finish"}``; a
    stream is accumulated the way agent clients do it (by tool-call index)."""
    if not stream:
        out = await client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        msg = out.choices[0].message
        calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or ()]
        return {"content": msg.content, "tool_calls": calls, "finish": out.choices[0].finish_reason}
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model=model, messages=messages, tools=TOOLS, stream=True
        )
    ]
    text, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for d in choice.delta.tool_calls or ():
                call = calls.setdefault(d.index, ["", "", ""])
                call[0] = d.id or call[0]
                call[1] = (d.function.name if d.function else None) or call[1]
                call[2] += (d.function.arguments if d.function else None) or ""
            finish = choice.finish_reason or finish
    assert chunks[0].choices[0].delta.role == "assistant"
    return {"content": text or None, "tool_calls": [tuple(calls[i]) for i in sorted(calls)], "finish": finish}


def follow_up(first: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation after the client ran the tools: assistant calls, then one result each."""
    calls = [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
        for cid, name, args in first["tool_calls"]
    ]
    results = [
        {"role": "tool", "tool_call_id": cid, "content": f"result of {name}"}
        for cid, name, _ in first["tool_calls"]
    ]
    return [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": first["content"], "tool_calls": calls},
        *results,
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_agent_loop_over_augment_with_parallel_calls(inprocess_proxy, fake_upstream, stream):
    fake_upstream.configure(preamble="Let me look." if stream else "")
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    client = sdk(proxy)
    first = await ask(client, "augment-chat", [{"role": "user", "content": ASK}], stream)
    assert first["finish"] == "tool_calls"
    assert [(name, json.loads(args)) for _, name, args in first["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    ids = [cid for cid, _, _ in first["tool_calls"]]
    assert all(ids) and len(set(ids)) == 2
    assert first["content"] == ("Let me look." if stream else None)
    sent = fake_upstream.requests()[0]["body"]
    assert sent["mode"] == "AGENT"  # tools offered
    assert [d["name"] for d in sent["tool_definitions"]] == ["get_weather", "get_time"]
    assert json.loads(sent["tool_definitions"][0]["input_schema_json"]) == TOOLS[0]["function"]["parameters"]
    assert sent["feature_detection_flags"]["support_parallel_tool_use"] is True

    final = await ask(client, "augment-chat", follow_up(first), stream)
    assert final["finish"] == "stop" and final["tool_calls"] == []
    assert final["content"] == f"Tool results: {ids[0]}=result of get_weather; {ids[1]}=result of get_time"
    body = fake_upstream.requests()[1]["body"]
    assert body["message"] == ""
    assert [n["tool_result_node"]["tool_use_id"] for n in body["nodes"]] == ids
    [turn] = body["chat_history"]
    assert turn["request_message"] == ASK
    uses = [n["tool_use"] for n in turn["response_nodes"] if n["type"] == 5]
    assert [(u["tool_use_id"], u["tool_name"]) for u in uses] == [
        (ids[0], "get_weather"),
        (ids[1], "get_time"),
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_agent_loop_over_an_openai_compatible_upstream(inprocess_proxy, fake_upstream, stream):
    proxy = await openai_pool(inprocess_proxy, fake_upstream, n=1)
    client = sdk(proxy)
    first = await ask(client, "gpt-x", [{"role": "user", "content": ASK}], stream)
    assert first["finish"] == "tool_calls" and first["content"] is None
    assert [(name, json.loads(args)) for _, name, args in first["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    final = await ask(client, "gpt-x", follow_up(first), stream)
    ids = [cid for cid, _, _ in first["tool_calls"]]
    assert final["content"] == f"Tool results: {ids[0]}=result of get_weather; {ids[1]}=result of get_time"
    sent = fake_upstream.requests()[1]["body"]
    assert sent["model"] == "upstream-x" and sent["tools"] == TOOLS  # the client's own JSON
    assert sent["messages"][1]["tool_calls"][0]["id"] == ids[0]
    assert sent["messages"][1]["content"] is None  # kept as the client sent it


async def test_tool_call_deltas_are_relayed_with_their_indices_ids_and_fragments(
    inprocess_proxy, fake_upstream
):
    proxy = await openai_pool(inprocess_proxy, fake_upstream, n=1)
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={
            "model": "gpt-x",
            "messages": [{"role": "user", "content": ASK}],
            "tools": TOOLS,
            "stream": True,
        },
    )
    events = [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in events if c["choices"]]
    calls = [tc for d in deltas for tc in d.get("tool_calls", ())]
    assert [c["index"] for c in calls] == [0, 0, 0, 1, 1, 1]  # first piece, then two fragments each
    assert calls[0]["id"].startswith("call_fake") and calls[0]["function"] == {
        "name": "get_weather",
        "arguments": "",
    }
    assert "id" not in calls[1] and calls[1]["function"].keys() == {"arguments"}
    assert deltas[0]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in events if c["choices"]][-1] == "tool_calls"
    assert r.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("provider", ["augment", "openai"])
async def test_a_tool_call_answer_fails_over_on_the_first_attempt(
    inprocess_proxy, fake_upstream, stream, provider
):
    if provider == "augment":
        proxy = await augment_pool(inprocess_proxy, fake_upstream, n=2)
        model, first_token = "augment-chat", "tok0"
    else:
        proxy, model, first_token = await openai_pool(inprocess_proxy, fake_upstream), "gpt-x", "sk-0"
    fake_upstream.fault(first_token, "server_error")  # the balancer's first pick (ties: compiled order)
    first = await ask(sdk(proxy), model, [{"role": "user", "content": ASK}], stream)
    assert first["finish"] == "tool_calls" and len(first["tool_calls"]) == 2
    stats = fake_upstream.stats()
    assert stats[first_token]["requests"] == 1
    assert sum(s["requests"] for s in stats.values()) == 2  # one failure, one answer


async def test_image_parts_become_image_nodes(inprocess_proxy, fake_upstream):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    out = await sdk(proxy).chat.completions.create(
        model="augment-chat", messages=[{"role": "user", "content": content}]
    )
    assert out.choices[0].message.content == "Hello from the fake Augment upstream."
    body = fake_upstream.requests()[0]["body"]
    assert body["message"] == "What is this?"
    assert body["nodes"] == [{"id": 0, "type": 2, "image_node": {"image_data": PNG, "format": 1}}]


async def test_augment_token_usage_is_preferred_over_the_estimate(inprocess_proxy, fake_upstream):
    fake_upstream.configure(usage_node=True)
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    out = await sdk(proxy).chat.completions.create(
        model="augment-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (21, 9)


BAD = [
    ({"role": "tool", "content": "x"}, "tool_call_id"),
    ({"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}, "arguments"),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        },
        "data: URLs",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}],
        },
        "base64",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA=="}}],
        },
        "tiff",
    ),
    ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}, "input_audio"),
]


@pytest.mark.parametrize(("message", "needle"), BAD, ids=[b[1] for b in BAD])
async def test_malformed_or_unsupported_tool_and_image_input_is_a_clear_400(
    inprocess_proxy, fake_upstream, message, needle
):
    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, message]
    if message["role"] == "assistant":
        messages.append({"role": "user", "content": "next"})
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={"model": "augment-chat", "messages": messages},
    )
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]
    assert fake_upstream.requests() == []


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
async def test_a_tool_call_answer_counts_as_a_successful_answer(inprocess_proxy, fake_upstream, stream):
    from tokenpool_proxy.usage import InMemoryUsage

    class Recorder(InMemoryUsage):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[tuple[Any, ...]] = []

        def record(self, user, upstream, outcome, prompt_tokens=0, completion_tokens=0, latency_s=0.0, **kw):
            super().record(user, upstream, outcome, prompt_tokens, completion_tokens, latency_s, **kw)
            self.records.append((user, upstream, outcome, prompt_tokens, completion_tokens))

    proxy = await augment_pool(inprocess_proxy, fake_upstream, n=1)
    proxy.svc.usage = recorder = Recorder()
    first = await ask(sdk(proxy), "augment-chat", [{"role": "user", "content": ASK}], stream)
    assert first["finish"] == "tool_calls"
    [(user, upstream, outcome, prompt, completion)] = recorder.records
    assert (user, upstream, outcome) == ("alice", "t0", "success")
    # the calls' names and arguments are the answer: get_weather{"city":"Paris"}get_time{"tz":"CET"}
    assert completion == (len('get_weather{"city":"Paris"}get_time{"tz":"CET"}') + 3) // 4
    assert prompt > (len(ASK) + 3) // 4  # the tool definitions count too
    health = proxy.svc.health.get("t0")
    assert health.in_flight == 0 and health.unhealthy_reason is None
