"""Pass-through to an Anthropic-compatible upstream (``spec.provider: Anthropic``).

The client's JSON object is forwarded as is, with the model replaced by the upstream model id
and ``stream: true`` (both client modes share one relay path), to ``{endpoint}/v1/messages``
(``{endpoint}/messages`` when the endpoint already ends with ``/v1``), with the client's
``anthropic-version`` and ``anthropic-beta`` headers. Every event comes back as a :class:`Piece`
carrying the event itself (relayed as it came) and what the pool reads from it: text, tool
calls, usage, the stop reason. An ``error`` event is an upstream failure like an HTTP error.
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
from ..schemas import ChatRequest
from ..settings import ModelSpec
from .base import (
    FinishReason,
    Piece,
    ToolCall,
    UpstreamEvent,
    UpstreamFailure,
    parse_retry_after,
    split_lines,
    transport_failures,
)

API_VERSION = "2023-06-01"  # when the client sent none
FINISH_OF: dict[str, FinishReason] = {
    "end_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop_sequence",
    "pause_turn": "pause_turn",
    "refusal": "content_filter",
}


def messages_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


def auth_headers(token: str) -> dict[str, str]:
    """Anthropic's own keys go in ``x-api-key`` only (it refuses them as Bearer tokens); other
    Anthropic-compatible servers read either header, some only ``Authorization``: both."""
    if token.startswith("sk-ant-"):
        return {"x-api-key": token}
    return {"x-api-key": token, "Authorization": f"Bearer {token}"}


def classify_anthropic_failure(status: int, text: str, retry_after: str | None) -> UpstreamFailure:
    snippet = text.strip()[:200] or f"HTTP {status}"
    lowered = text.lower()
    if status in (401, 403):
        return UpstreamFailure("unhealthy", "Unauthorized", snippet, status)
    if "credit balance is too low" in lowered:
        return UpstreamFailure("unhealthy", "OutOfCredits", snippet, status)
    if status in REJECTED_STATUSES:  # this request is refused: the client's 4xx, no failover
        return UpstreamFailure("reject", "RequestRejected", snippet, status)
    if status == 429:
        return UpstreamFailure("cooldown", "RateLimited", snippet, status, parse_retry_after(retry_after))
    if status >= 500:  # 529: overloaded
        return UpstreamFailure("cooldown", "ServerError", snippet, status)
    return UpstreamFailure("fail", "ClientError", snippet, status)


def _stream_error(data: dict[str, Any]) -> UpstreamFailure:
    """An ``error`` event inside a 200 stream, as the HTTP status its type stands for."""
    error = _dict(data.get("error"))
    kind = str(error.get("type") or "")
    status = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429}.get(kind, 400)
    return classify_anthropic_failure(status, f"{kind}: {error.get('message') or ''}", None)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


class EventReader:
    """Upstream events → pieces; remembers the stop reason until ``message_stop`` ends the answer."""

    __slots__ = ("stop_reason",)

    def __init__(self) -> None:
        self.stop_reason: FinishReason = "stop"

    def piece(self, name: bytes, data: bytes) -> Piece | None:
        try:
            obj: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        kind = obj.get("type")
        if kind == "error":
            raise _stream_error(obj)
        event = UpstreamEvent(str(kind), obj, b"event: " + name + b"\ndata: " + data + b"\n\n")
        if kind == "content_block_delta" and isinstance(delta := obj.get("delta"), dict):
            if delta.get("type") == "text_delta" and isinstance(text := delta.get("text"), str):
                return Piece(text, event=event)
            if delta.get("type") == "input_json_delta" and isinstance(obj.get("index"), int):
                args = delta.get("partial_json")
                call = ToolCall(obj["index"], arguments=args if isinstance(args, str) else "")
                return Piece(tool_calls=(call,), event=event, content=True)
            return Piece(event=event, content=True)
        if kind == "content_block_start" and isinstance(block := obj.get("content_block"), dict):
            if block.get("type") == "tool_use" and isinstance(obj.get("index"), int):
                call = ToolCall(obj["index"], str(block.get("id") or ""), str(block.get("name") or ""))
                return Piece(tool_calls=(call,), event=event, content=True)
            return Piece(event=event, content=True)
        if kind == "message_start" and isinstance(message := obj.get("message"), dict):
            return Piece(prompt_tokens=self._prompt(message.get("usage")), event=event)
        if kind == "message_delta":
            reason = _dict(obj.get("delta")).get("stop_reason")
            self.stop_reason = FINISH_OF.get(reason, "stop") if isinstance(reason, str) else "stop"
            usage = _dict(obj.get("usage"))
            prompt = self._prompt(usage) if "input_tokens" in usage else None
            return Piece(
                prompt_tokens=prompt, completion_tokens=_int(usage.get("output_tokens")), event=event
            )
        if kind == "message_stop":
            return Piece(finish_reason=self.stop_reason, event=event)
        return Piece(event=event)  # ping, and events this proxy does not know

    @staticmethod
    def _prompt(usage: Any) -> int | None:
        if not isinstance(usage, dict):
            return None
        keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        return sum(_int(usage.get(k)) for k in keys)


class AnthropicProvider:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def prepare(self, request: ChatRequest | MessagesRequest, model: ModelSpec) -> bytes:
        assert isinstance(request, MessagesRequest)  # settings keep Anthropic models on /v1/messages
        payload = dict(request.raw) if request.raw else request.model_dump(exclude_none=True)
        payload.update(model=model.upstream_model or model.id, stream=True)
        return orjson.dumps(payload)

    async def stream(
        self,
        upstream: UpstreamRoute,
        request: ChatRequest | MessagesRequest,
        model: ModelSpec,
        request_id: str,
        body: bytes,
    ) -> AsyncIterator[Piece]:
        assert isinstance(request, MessagesRequest)
        client = request.client_headers
        hdrs = {
            "Content-Type": "application/json",
            "anthropic-version": client.get("anthropic-version") or API_VERSION,
            "x-request-id": request_id,
            **auth_headers(upstream.token),
        }
        if client.get("anthropic-beta"):
            hdrs["anthropic-beta"] = client["anthropic-beta"]
        reader = EventReader()
        with transport_failures():
            async with self.session.post(messages_url(upstream.endpoint), data=body, headers=hdrs) as resp:
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode("utf-8", "replace")
                    raise classify_anthropic_failure(resp.status, text, resp.headers.get("Retry-After"))
                try:
                    name, data, stopped = b"message", b"", False
                    content, tail = resp.content, b""
                    while True:
                        arrived = await content.readany()  # b"": the end of the body
                        batch, tail = split_lines(arrived, tail)
                        for line in batch:
                            line = line.rstrip(b"\r")
                            if line.startswith(b"data:"):
                                data = line[5:].strip()
                            elif line.startswith(b"event:"):
                                name = line[6:].strip()
                            elif not line and data:
                                piece = reader.piece(name, data)
                                name, data = b"message", b""
                                if piece is not None and not stopped:
                                    stopped = piece.finish_reason is not None
                                    yield piece
                        if not arrived:
                            break
                    if data and not stopped and (piece := reader.piece(name, data)) is not None:
                        stopped = piece.finish_reason is not None  # a last event without its blank line
                        yield piece
                    if not stopped:
                        raise UpstreamFailure("cooldown", "ConnectError", "the upstream stream ended early")
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
