"""The fake's OpenAI-compatible ``chat/completions``: an SSE stream (what the proxy asks for).

Faults: ``unauthorized`` (401), ``server_error`` (``status``, default 503). Tool calls follow
tool_script.py: the first delta of a call carries its id and name, its arguments follow in two
fragments, calls one after the other by ``index``; ``finish_reason`` is ``tool_calls``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from .tool_script import Script, plan, split

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def _script(body: dict[str, Any], spec: dict[str, Any]) -> Script:
    """The current turn: the messages after the last assistant message."""
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    turn = messages[last + 1 :]
    results = [(m.get("tool_call_id"), m.get("content")) for m in turn if m.get("role") == "tool"]
    prompt = " ".join(
        m["content"] for m in turn if m.get("role") == "user" and isinstance(m.get("content"), str)
    )
    tools = [t["function"]["name"] for t in body.get("tools") or () if isinstance(t.get("function"), dict)]
    return plan(tools, prompt, results, spec["text"], spec["preamble"])


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return (
        b"data: "
        + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        + b"\n\n"
    )


async def answer(
    request: web.Request, spec: dict[str, Any], body: dict[str, Any], call_id: Callable[[str], str]
) -> web.StreamResponse:
    if spec.get("fault") == "unauthorized":
        return web.json_response({"error": {"message": "Incorrect API key"}}, status=401)
    if spec.get("fault") == "server_error":
        return web.json_response({"error": {"message": "overloaded"}}, status=int(spec.get("status", 503)))
    script = _script(body, spec)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if script.text:
        for piece in split(script.text, spec["chunks"]):
            if piece:
                await resp.write(_chunk({"content": piece}))
    for index, (name, args) in enumerate(script.calls):
        first = {
            "index": index,
            "id": call_id("call_fake"),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        await resp.write(_chunk({"tool_calls": [first]}))
        for fragment in split(args, 2):
            await resp.write(_chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
    done = _chunk({}, "tool_calls" if script.calls else "stop")
    cost = {} if spec.get("cost") is None else {"cost": spec["cost"]}
    usage = b"data: " + orjson.dumps({"choices": [], "usage": {**USAGE, **cost}}) + b"\n\n"
    await resp.write(done + usage + b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp
