"""Everything the proxy knows about Augment's ``chat-stream`` protocol: this module and the
request body's (augment_request.py).

The protocol is reverse-engineered (docs/augment-protocol.md); keeping headers, stream parsing
and error texts here lets the code follow upstream changes in one place.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tokenpool.contract.compiled import UpstreamRoute
from tokenpool.upstream.signals import classify_http, notice_reason

from ..messages_schema import MessagesRequest
from ..schemas import BadRequest, ChatRequest
from ..settings import ModelSpec
from .augment_request import SESSION_NS, build_chat_body
from .base import FinishReason, Piece, ToolCall, UpstreamFailure, split_lines, transport_failures

CHAT_PATH = "chat-stream"
API_VERSION = "2"
# Answer node types the proxy reads (others: thinking, memories, billing, ... are ignored).
NODE_TOOL_USE = 5
NODE_TOKEN_USAGE = 10
# stop_reason → finish reason (numbers, and the names some servers send); anything else: stop.
STOP_REASONS: dict[int | str, FinishReason] = {
    2: "length",
    "MAX_TOKENS": "length",
    3: "tool_calls",
    "TOOL_USE_REQUESTED": "tool_calls",
    4: "content_filter",
    "SAFETY": "content_filter",
    5: "content_filter",
    "RECITATION": "content_filter",
}


# -- request ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def session_id(upstream_name: str) -> str:
    """Stable per pooled token, as the IDE extension keeps one per installation."""
    return str(uuid.uuid5(SESSION_NS, upstream_name))


def fast_uuid4() -> str:
    """A random (version 4) UUID string, without building a ``uuid.UUID`` (hot path)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def headers(upstream: UpstreamRoute, user_agent: str) -> dict[str, str]:
    """A fresh uuid4 ``x-request-id`` per upstream attempt, as the IDE extension sends."""
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {upstream.token}",
        "x-api-version": API_VERSION,
        "x-request-id": fast_uuid4(),
        "x-request-session-id": session_id(upstream.name),
        "User-Agent": user_agent,
    }


# -- response ----------------------------------------------------------------------------------
def classify_augment_failure(status: int, text: str, retry_after: str | None = None) -> UpstreamFailure:
    """An HTTP error answer (status + the start of its body): tokenpool/upstream/signals.py."""
    snippet = text.strip()[:200] or f"HTTP {status}"
    return UpstreamFailure.of(classify_http(status, text, retry_after), snippet)


class MalformedLine(ValueError):
    """A line of the answer that is not a JSON object: the stream is broken, not an answer."""


def parse_line(line: bytes) -> tuple[str, FinishReason | None, bool, list[Any] | None]:
    """One NDJSON line → (text, finish_reason, end, nodes). Empty lines and unknown fields are
    ignored; a line that is not a JSON object raises :class:`MalformedLine`."""
    line = line.strip()
    if not line:
        return "", None, False, None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise MalformedLine("not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedLine("not a JSON object")
    text = obj.get("text") or ""
    if not isinstance(text, str):
        text = ""
    nodes = obj.get("nodes") or None
    if not isinstance(nodes, list):
        nodes = None
    stop = obj.get("stop_reason")
    if stop is not None:
        finish = STOP_REASONS.get(stop, "stop") if isinstance(stop, int | str) else "stop"
        return text, finish, True, nodes
    if obj.get("done") is True:
        return text, "stop", True, nodes
    return text, None, False, nodes


def read_nodes(nodes: list[Any], call_ids: list[str]) -> tuple[tuple[ToolCall, ...], tuple[int, int] | None]:
    """Tool calls (numbered in the order they come; ``call_ids`` are the answer's calls so far,
    a repeated id is one call) and token usage ``(prompt, completion)`` of an answer line."""
    calls: list[ToolCall] = []
    usage = None
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == NODE_TOOL_USE:
            use = node.get("tool_use")
            if not isinstance(use, dict) or use.get("is_partial") is True:
                continue
            name, uid, args = use.get("tool_name"), use.get("tool_use_id"), use.get("input_json")
            if not isinstance(name, str) or not name:
                continue
            if not isinstance(uid, str) or not uid:
                uid = "toolu_" + os.urandom(12).hex()
            if uid in call_ids:
                continue
            call_ids.append(uid)
            calls.append(
                ToolCall(len(call_ids) - 1, uid, name, args if isinstance(args, str) and args else "{}")
            )
        elif kind == NODE_TOKEN_USAGE and isinstance(tu := node.get("token_usage"), dict):
            n = [
                _count(tu.get(k))
                for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
            ]
            usage = (sum(n), _count(tu.get("output_tokens")))
    return tuple(calls), usage


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


class AugmentProvider:
    def __init__(self, session: aiohttp.ClientSession, user_agent: str) -> None:
        self.session = session
        self.user_agent = user_agent

    def prepare(self, request: ChatRequest | MessagesRequest, model: ModelSpec) -> bytes:
        if getattr(request, "n", None) not in (None, 1):
            raise BadRequest(
                "n must be 1: Augment answers with one choice", param="n", code="unsupported_parameter"
            )
        return orjson.dumps(build_chat_body(request, model))

    async def stream(
        self,
        upstream: UpstreamRoute,
        request: ChatRequest | MessagesRequest,
        model: ModelSpec,
        request_id: str,
        body: bytes,
    ) -> AsyncIterator[Piece]:
        url = upstream.endpoint + CHAT_PATH
        with transport_failures():
            async with self.session.post(url, data=body, headers=headers(upstream, self.user_agent)) as resp:
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode("utf-8", "replace")
                    raise classify_augment_failure(resp.status, text, resp.headers.get("Retry-After"))
                ended = False
                completed = False
                held: Piece | None = None  # a first text shaped like an account notice
                call_ids: list[str] = []
                try:
                    content, tail = resp.content, b""
                    while True:
                        data = await content.readany()  # b"": the end of the body
                        batch, tail = split_lines(data, tail)
                        for line in batch:
                            if ended:
                                continue  # drain to EOF so the connection goes back to the pool
                            try:
                                text, finish, ended, nodes = parse_line(line)
                            except MalformedLine as exc:
                                raise UpstreamFailure(
                                    "cooldown", "MalformedAnswer", f"upstream sent {exc}"
                                ) from None
                            if held is not None:  # a notice is the whole answer: see what follows
                                if text or nodes:
                                    yield held  # more came: an answer that merely starts like a notice
                                    held = None
                                else:
                                    if finish:
                                        held = Piece(held.text, finish)
                                    continue
                            elif not completed and text and nodes is None and notice_reason(text) is not None:
                                held, completed = Piece(text, finish), True
                                continue
                            if nodes is None:  # the common line: a piece of text
                                if text or ended:
                                    completed = True
                                    # (a turn that made calls ends on them)
                                    yield Piece(
                                        text,
                                        "tool_calls" if ended and call_ids and finish == "stop" else finish,
                                    )
                                continue
                            calls, usage = read_nodes(nodes, call_ids)
                            if ended and call_ids and finish == "stop":
                                finish = "tool_calls"
                            if text or ended or calls or usage:
                                completed = True
                                if usage is None:
                                    yield Piece(text, finish, tool_calls=calls)
                                else:
                                    yield Piece(text, finish, usage[0], usage[1], calls)
                        if not data:
                            break
                    if held is not None:  # the notice was the whole answer: a suspicion to confirm
                        raise UpstreamFailure(
                            "notice",
                            notice_reason(held.text) or "Suspended",
                            "an account notice in the answer",
                            200,
                            pieces=(Piece(held.text, held.finish_reason or "stop"),),
                        )
                    if not ended:  # a body that just ends is still an answer
                        yield Piece("", "tool_calls" if call_ids else "stop")
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
