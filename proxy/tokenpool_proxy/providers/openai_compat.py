"""Pass-through to an OpenAI-compatible upstream (``spec.provider: OpenAI``).

The client's request is forwarded as it was sent (all its parameters), with the model replaced by the
upstream model id and ``stream: true`` so both client modes share one relay path. Text deltas,
tool-call deltas (with their indices, ids and argument fragments), the finish reason and the
upstream's own usage figures (tokens, and ``usage.cost`` where it prices answers) come back as :class:`Piece`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tokenpool.contract.compiled import UpstreamRoute
from tokenpool.upstream.signals import REJECTED_STATUSES

from ..messages_schema import MessagesRequest
from ..schemas import BadRequest, ChatRequest
from ..settings import ModelSpec
from .base import (
    FinishReason,
    Piece,
    ToolCall,
    UpstreamFailure,
    parse_retry_after,
    split_lines,
    transport_failures,
)


def classify_openai_failure(status: int, text: str, retry_after: str | None) -> UpstreamFailure:
    snippet = text.strip()[:200] or f"HTTP {status}"
    if status in REJECTED_STATUSES:  # this request is refused: the client's 4xx, no failover
        return UpstreamFailure("reject", "RequestRejected", snippet, status)
    if status in (401, 403):
        return UpstreamFailure("unhealthy", "Unauthorized", snippet, status)
    if status == 429:
        return UpstreamFailure("cooldown", "RateLimited", snippet, status, parse_retry_after(retry_after))
    if status >= 500:
        return UpstreamFailure("cooldown", "ServerError", snippet, status)
    return UpstreamFailure("fail", "ClientError", snippet, status)


FINISH_REASONS: dict[str, FinishReason] = {
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def parse_event(data: bytes) -> Piece | None:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    text = ""
    finish: FinishReason | None = None
    calls: tuple[ToolCall, ...] = ()
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            text += content
        if delta.get("tool_calls"):
            calls += tool_call_deltas(delta["tool_calls"])
        reason = choice.get("finish_reason")
        if reason:
            finish = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    usage = obj.get("usage") or None
    if isinstance(usage, dict):
        return Piece(
            text,
            finish,
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
            calls,
            credits=_cost(usage.get("cost")),
        )
    return Piece(text, finish, tool_calls=calls) if (text or finish or calls) else None


def tool_call_deltas(items: Any) -> tuple[ToolCall, ...]:
    """``delta.tool_calls`` → :class:`ToolCall` pieces; malformed entries are skipped."""
    out = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict) or not isinstance(index := item.get("index"), int):
            continue
        fn = item.get("function")
        if not isinstance(fn, dict):
            fn = {}
        cid, name, args = item.get("id"), fn.get("name"), fn.get("arguments")
        out.append(
            ToolCall(
                index,
                cid if isinstance(cid, str) else None,
                name if isinstance(name, str) else None,
                args if isinstance(args, str) else "",
            )
        )
    return tuple(out)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _cost(value: Any) -> float | None:
    """``usage.cost``, what upstreams that price answers report (OpenRouter: credits): a finite
    number ≥ 0, else unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < float("inf") else None


class OpenAIProvider:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def prepare(self, request: ChatRequest | MessagesRequest, model: ModelSpec) -> bytes:
        assert isinstance(request, ChatRequest)  # settings keep OpenAI models on /v1/chat/completions
        if request.n not in (None, 1):  # one choice is relayed: n>1 would interleave several
            raise BadRequest(
                "n must be 1: the proxy relays one choice", param="n", code="unsupported_parameter"
            )
        payload = request.as_sent()
        payload.update(model=model.upstream_model or model.id, stream=True)
        payload["stream_options"] = {"include_usage": True}
        return orjson.dumps(payload)

    async def stream(
        self,
        upstream: UpstreamRoute,
        request: ChatRequest | MessagesRequest,
        model: ModelSpec,
        request_id: str,
        body: bytes,
    ) -> AsyncIterator[Piece]:
        url = upstream.endpoint.rstrip("/") + "/chat/completions"
        hdrs = {
            "Authorization": f"Bearer {upstream.token}",
            "Content-Type": "application/json",
            "x-request-id": request_id,
        }
        with transport_failures():
            async with self.session.post(url, data=body, headers=hdrs) as resp:
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode("utf-8", "replace")
                    raise classify_openai_failure(resp.status, text, resp.headers.get("Retry-After"))
                try:
                    content, tail = resp.content, b""
                    while True:
                        data = await content.readany()  # b"": the end of the body
                        batch, tail = split_lines(data, tail)
                        for line in batch:
                            if not line.startswith(b"data:"):
                                continue
                            event = line[5:].strip()
                            if event == b"[DONE]":
                                continue  # drain to EOF so the connection goes back to the pool
                            piece = parse_event(event)
                            if piece is not None:
                                yield piece
                        if not data:
                            break
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
