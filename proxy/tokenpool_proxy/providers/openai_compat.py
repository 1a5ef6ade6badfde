"""Pass-through to an OpenAI-compatible upstream (``spec.provider: OpenAI``).

The client's request is forwarded as is (all its parameters), with the model replaced by the
upstream model id and ``stream: true`` so both client modes share one relay path. Text deltas
and the upstream's own usage figures come back as :class:`Piece`; tool calls are not relayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tokenpool.contract.compiled import UpstreamRoute

from ..schemas import ChatRequest
from ..settings import ModelSpec
from .base import FinishReason, Piece, UpstreamFailure, parse_retry_after, transport_failures


def classify_openai_failure(status: int, text: str, retry_after: str | None) -> UpstreamFailure:
    snippet = text.strip()[:200] or f"HTTP {status}"
    if status in (401, 403):
        return UpstreamFailure("unhealthy", "Unauthorized", snippet, status)
    if status == 429:
        return UpstreamFailure("cooldown", "RateLimited", snippet, status, parse_retry_after(retry_after))
    if status >= 500:
        return UpstreamFailure("cooldown", "ServerError", snippet, status)
    return UpstreamFailure("fail", "ClientError", snippet, status)


def parse_event(data: bytes) -> Piece | None:
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    text = ""
    finish: FinishReason | None = None
    for choice in obj.get("choices") or ():
        delta = choice.get("delta") or {}
        text += delta.get("content") or ""
        if choice.get("finish_reason"):
            finish = "length" if choice["finish_reason"] == "length" else "stop"
    usage = obj.get("usage") or None
    if usage:
        return Piece(text, finish, usage.get("prompt_tokens"), usage.get("completion_tokens"))
    return Piece(text, finish) if (text or finish) else None


class OpenAIProvider:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def stream(
        self, upstream: UpstreamRoute, request: ChatRequest, model: ModelSpec, request_id: str
    ) -> AsyncIterator[Piece]:
        payload = request.model_dump(exclude_none=True)
        payload.update(model=model.upstream_model or model.id, stream=True)
        payload["stream_options"] = {"include_usage": True}
        url = upstream.endpoint.rstrip("/") + "/chat/completions"
        hdrs = {
            "Authorization": f"Bearer {upstream.token}",
            "Content-Type": "application/json",
            "x-request-id": request_id,
        }
        with transport_failures():
            async with self.session.post(url, data=orjson.dumps(payload), headers=hdrs) as resp:
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode("utf-8", "replace")
                    raise classify_openai_failure(resp.status, text, resp.headers.get("Retry-After"))
                try:
                    async for line in resp.content:
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            continue  # drain to EOF so the connection goes back to the pool
                        piece = parse_event(data)
                        if piece is not None:
                            yield piece
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
