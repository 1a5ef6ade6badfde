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

from ..messages_schema import MessagesRequest
from ..schemas import ChatRequest
from ..settings import ModelSpec
from .augment_request import SESSION_NS, build_chat_body
from .base import FinishReason, Piece, ToolCall, UpstreamFailure, parse_retry_after, transport_failures

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

# Texts that make an account unusable, with the health reason they map to (lower-cased match).
UNUSABLE_TEXTS: tuple[tuple[str, str], ...] = (
    ("invalid token", "Unauthorized"),
    ("is inactive", "Suspended"),
    ("has been suspended", "Suspended"),
    ("access has been restricted", "Suspended"),
    ("out of user messages", "OutOfCredits"),
    ("run out of credits", "OutOfCredits"),
)
BLOCKED_TEXT = "request blocked"
# Inside a 200 stream only whole account notices count (an answer may mention "inactive").
STREAM_NOTICES = (
    "your subscription for account",
    "your account has been suspended",
    "has been suspended because",
    "you are out of user messages",
    "you have run out of credits",
    "your access has been restricted",
)


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
def classify_augment_failure(
    status: int, text: str, retry_after: str | None = None, blocked_s: float = 600.0
) -> UpstreamFailure:
    """An upstream error (HTTP status + body text, or an error text inside a 200 stream)."""
    lowered = text.lower()
    snippet = text.strip()[:200] or f"HTTP {status}"
    for needle, reason in UNUSABLE_TEXTS:
        if needle in lowered:
            return UpstreamFailure("unhealthy", reason, snippet, status)
    if status in (401, 403):
        return UpstreamFailure("unhealthy", "Unauthorized", snippet, status)
    if BLOCKED_TEXT in lowered:
        return UpstreamFailure("cooldown", "Blocked", snippet, status, blocked_s)
    if status == 429:
        return UpstreamFailure("cooldown", "RateLimited", snippet, status, parse_retry_after(retry_after))
    if status >= 500:
        return UpstreamFailure("cooldown", "ServerError", snippet, status)
    return UpstreamFailure("fail", "ClientError", snippet, status)


def stream_error_text(text: str) -> bool:
    """Does the first text of a 200 stream announce an account problem instead of an answer?"""
    lowered = text[:300].lower()
    return lowered.startswith(BLOCKED_TEXT) or any(n in lowered for n in STREAM_NOTICES)


def parse_line(line: bytes) -> tuple[str, FinishReason | None, bool, list[Any] | None]:
    """One NDJSON line → (text, finish_reason, end, nodes). Unknown/empty lines are ignored."""
    line = line.strip()
    if not line:
        return "", None, False, None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "", None, False, None
    if not isinstance(obj, dict):
        return "", None, False, None
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
    def __init__(self, session: aiohttp.ClientSession, user_agent: str, blocked_cooldown_s: float) -> None:
        self.session = session
        self.user_agent = user_agent
        self.blocked_cooldown_s = blocked_cooldown_s

    async def stream(
        self,
        upstream: UpstreamRoute,
        request: ChatRequest | MessagesRequest,
        model: ModelSpec,
        request_id: str,
    ) -> AsyncIterator[Piece]:
        body = orjson.dumps(build_chat_body(request, model))
        url = upstream.endpoint + CHAT_PATH
        with transport_failures():
            async with self.session.post(url, data=body, headers=headers(upstream, self.user_agent)) as resp:
                if resp.status != 200:
                    text = (await resp.content.read(4096)).decode("utf-8", "replace")
                    raise classify_augment_failure(
                        resp.status, text, resp.headers.get("Retry-After"), self.blocked_cooldown_s
                    )
                ended = False
                completed = False
                call_ids: list[str] = []
                try:
                    async for line in resp.content:
                        if ended:
                            continue  # drain to EOF so the connection goes back to the pool
                        text, finish, ended, nodes = parse_line(line)
                        if not completed and text and stream_error_text(text):  # only the first text
                            raise classify_augment_failure(200, text, None, self.blocked_cooldown_s)
                        if nodes is None:  # the common line: a piece of text
                            if text or ended:
                                completed = True
                                # (a turn that made calls ends on them)
                                yield Piece(
                                    text, "tool_calls" if ended and call_ids and finish == "stop" else finish
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
                    if not ended:  # a body that just ends is still an answer
                        yield Piece("", "tool_calls" if call_ids else "stop")
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
