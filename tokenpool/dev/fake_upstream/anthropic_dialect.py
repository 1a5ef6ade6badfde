"""The fake's Anthropic Messages API: ``POST {prefix}/v1/messages`` as an SSE stream (what the
proxy asks for), with Anthropic's event sequence: ``message_start``, per block
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` (a ``ping`` after the
first block starts), ``message_delta`` with the stop reason and usage, ``message_stop``.

Faults: ``unauthorized`` (401 ``authentication_error``), ``rate_limited`` (429 + Retry-After),
``server_error`` (``status``, default 529 ``overloaded_error``), ``overloaded_in_stream`` (a 200
stream whose first event after ``message_start`` is an ``error`` event), ``drop`` (cut after
``after_chunks`` events). Tool use follows tool_script.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from .tool_script import Script, plan, split

USAGE = (17, 5)  # input_tokens, output_tokens


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def _script(body: dict[str, Any], spec: dict[str, Any]) -> Script:
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    last = messages[-1] if messages else {}
    content = last.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    prompt = " ".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    results = []
    for b in blocks:
        if b.get("type") == "tool_result":
            inner = b.get("content")
            text = inner if isinstance(inner, str) else " ".join(i.get("text", "") for i in inner or ())
            results.append((b.get("tool_use_id"), text))
    tools = [t.get("name") for t in body.get("tools") or () if isinstance(t, dict)]
    return plan(tools, prompt, results, spec["text"], spec["preamble"])


def _event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def events(body: dict[str, Any], spec: dict[str, Any], call_id: Callable[[str], str]) -> list[bytes]:
    script = _script(body, spec)
    message: dict[str, Any] = {
        "id": call_id("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE[0], "output_tokens": 1},
    }
    out = [_event({"type": "message_start", "message": message})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if script.text:
        deltas = [{"type": "text_delta", "text": p} for p in split(script.text, spec["chunks"]) if p]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for name, args in script.calls:
        block = {"type": "tool_use", "id": call_id("toolu_fake"), "name": name, "input": {}}
        blocks.append(
            (block, [{"type": "input_json_delta", "partial_json": p} for p in ["", *split(args, 2)]])
        )
    for index, (block, deltas) in enumerate(blocks):
        out.append(_event({"type": "content_block_start", "index": index, "content_block": block}))
        if index == 0:
            out.append(_event({"type": "ping"}))
        out += [_event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        out.append(_event({"type": "content_block_stop", "index": index}))
    stop = "tool_use" if script.calls else "end_turn"
    delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}
    out.append(_event({**delta, "usage": {"output_tokens": USAGE[1]}}))
    out.append(_event({"type": "message_stop"}))
    return out


async def answer(
    request: web.Request, spec: dict[str, Any], body: dict[str, Any], call_id: Callable[[str], str]
) -> web.StreamResponse:
    fault = spec.get("fault")
    if fault == "unauthorized":
        return _error(401, "authentication_error", "invalid x-api-key")
    if fault == "rate_limited":
        return _error(429, "rate_limit_error", "slow down", {"Retry-After": str(spec.get("retry_after", 1))})
    if fault == "server_error":
        status = int(spec.get("status", 529))
        return _error(status, "overloaded_error" if status == 529 else "api_error", "Overloaded")
    lines = events(body, spec, call_id)
    if fault == "overloaded_in_stream":
        lines = [
            lines[0],
            _event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i, line in enumerate(lines):
        if fault == "drop" and i >= int(spec.get("after_chunks", 1)):
            assert request.transport is not None
            request.transport.abort()
            return resp
        await resp.write(line)
    await resp.write_eof()
    return resp
