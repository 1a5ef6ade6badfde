"""Golden streams: the exact bytes-level event sequence a client sees for an answer that says a
few words and then calls two tools, over Augment, in Anthropic's and in OpenAI's dialect."""

from __future__ import annotations

import json
from typing import Any

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route

PT = new_personal_token()
ASK = 'call get_weather {"city": "Paris"} and call get_time'
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "input_schema": {"type": "object"}},
    {"name": "get_time", "input_schema": {"type": "object"}},
]
OPENAI_TOOLS = [{"type": "function", "function": t} for t in ({"name": "get_weather"}, {"name": "get_time"})]


async def proxy_on_augment(inprocess_proxy, fake):
    fake.configure(preamble="Let me look.", chunks=2)
    up = upstream_route("t0", fake.tenant("t0"), token="tok0")
    return await inprocess_proxy(users=[user_route("alice", PT, ["t0"])], upstreams=[up])


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        events.append((name[7:], json.loads(data[6:])))
    assert body.endswith("\n\n")
    return events


async def test_anthropic_event_sequence(inprocess_proxy, fake_upstream):
    proxy = await proxy_on_augment(inprocess_proxy, fake_upstream)
    r = await proxy.client.post(
        "/v1/messages",
        headers={"x-api-key": PT, "anthropic-version": "2023-06-01"},
        json={
            "model": "augment-agent",
            "max_tokens": 100,
            "stream": True,
            "tools": ANTHROPIC_TOOLS,
            "messages": [{"role": "user", "content": ASK}],
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert all(name == data["type"] for name, data in events), "the event name is the data's type"
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["usage"]["input_tokens"] > 0
    uses = [
        d["content_block"]["id"] for _, d in events if d["type"] == "content_block_start" and d["index"] > 0
    ]
    assert [d for _, d in events] == [
        {
            "type": "message_start",
            "message": {
                "id": start["id"],
                "type": "message",
                "role": "assistant",
                "model": "augment-agent",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": start["usage"]["input_tokens"], "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " look."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": uses[0], "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": uses[1], "name": "get_time", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": start["usage"]["input_tokens"], "output_tokens": 13},
        },
        {"type": "message_stop"},
    ]


async def test_openai_tool_call_chunks(inprocess_proxy, fake_upstream):
    proxy = await proxy_on_augment(inprocess_proxy, fake_upstream)
    r = await proxy.client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {PT}"},
        json={
            "model": "augment-agent",
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": OPENAI_TOOLS,
            "messages": [{"role": "user", "content": ASK}],
        },
    )
    blocks = [b for b in r.text.split("\n\n") if b]
    assert blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b.removeprefix("data: ")) for b in blocks[:-1]]
    assert len({(c["id"], c["created"], c["model"], c["object"]) for c in chunks}) == 1
    ids = [tc["id"] for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls", ())]
    assert [(c["choices"], c.get("usage")) for c in chunks] == [
        ([{"index": 0, "delta": {"role": "assistant", "content": "Let me"}, "finish_reason": None}], None),
        ([{"index": 0, "delta": {"content": " look."}, "finish_reason": None}], None),
        (
            [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": ids[0],
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
            None,
        ),
        (
            [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 1,
                                "id": ids[1],
                                "type": "function",
                                "function": {"name": "get_time", "arguments": "{}"},
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ],
            None,
        ),
        ([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], None),
        (
            [],
            {
                "prompt_tokens": chunks[-1]["usage"]["prompt_tokens"],
                "completion_tokens": 13,
                "total_tokens": chunks[-1]["usage"]["prompt_tokens"] + 13,
            },
        ),
    ]
