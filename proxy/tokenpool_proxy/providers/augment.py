"""Everything the proxy knows about Augment's ``chat-stream`` protocol, in one module.

The protocol is reverse-engineered (docs/augment-protocol.md); keeping request building,
stream parsing and error texts here lets the code follow upstream changes in one place.
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

from ..schemas import BadRequest, ChatMessage, ChatRequest
from ..settings import ModelSpec
from .base import FinishReason, Piece, UpstreamFailure, parse_retry_after, transport_failures

CHAT_PATH = "chat-stream"
API_VERSION = "2"
_SESSION_NS = uuid.UUID("3f0b1a53-3c5e-4d43-9a53-6b0e9e3f1c11")

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


# -- request -----------------------------------------------------------------------------------
def message_text(msg: ChatMessage) -> str:
    """A message's text: a string, or its ``text`` parts joined. Images are refused (400)."""
    content = msg.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type == "text":
            texts.append(part.text or "")
        else:
            raise BadRequest(
                f"content part type {part.type!r} is not supported by Augment upstreams (text only)",
                param="messages",
                code="unsupported_content",
            )
    return "".join(texts)


def convert_messages(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]], str]:
    """OpenAI messages → (guidelines, [(user, assistant)] history, final message), by role.

    System/developer messages become guidelines wherever they are; consecutive messages of one
    role are joined; tool results count as user text. The conversation must end with a user turn.
    """
    guidelines: list[str] = []
    turns: list[tuple[str, str]] = []
    user_parts: list[str] = []
    assistant_parts: list[str] = []
    for msg in messages:
        text = message_text(msg)
        if msg.role in ("system", "developer"):
            guidelines.append(text)
        elif msg.role == "assistant":
            assistant_parts.append(text)
        else:  # user, tool, function
            if assistant_parts:
                turns.append(("\n\n".join(user_parts), "\n\n".join(assistant_parts)))
                user_parts, assistant_parts = [], []
            user_parts.append(text)
    if assistant_parts or not user_parts:
        raise BadRequest("the last message must be a user message", param="messages", code="invalid_messages")
    return "\n\n".join(guidelines), turns, "\n\n".join(user_parts)


def history_item(index: int, request_message: str, response_text: str) -> dict[str, Any]:
    return {
        "request_message": request_message,
        "response_text": response_text,
        "request_id": str(uuid.uuid5(_SESSION_NS, f"history-{index}")),
        "request_nodes": [],
        "response_nodes": [
            {
                "id": 0,
                "type": 0,
                "content": response_text,
                "tool_use": {"tool_use_id": "", "tool_name": "", "input_json": ""},
                "agent_memory": {"content": ""},
            }
        ],
    }


def build_chat_body(request: ChatRequest, model: ModelSpec) -> dict[str, Any]:
    guidelines, turns, message = convert_messages(request.messages)
    body: dict[str, Any] = {
        "message": message,
        "chat_history": [history_item(i, u, a) for i, (u, a) in enumerate(turns)],
        "mode": model.augment_mode(),
        "user_guidelines": guidelines,
        "prefix": "",
        "suffix": "",
        "lang": "",
        "path": "",
        "agent_memories": "",
        "blobs": {"checkpoint_id": None, "added_blobs": [], "deleted_blobs": []},
        "user_guided_blobs": [],
        "external_source_ids": [],
        "tool_definitions": [],
        "nodes": [],
        "feature_detection_flags": {"support_raw_output": True},
    }
    if model.upstream_model:
        body["model"] = model.upstream_model
    return body


@functools.lru_cache(maxsize=4096)
def session_id(upstream_name: str) -> str:
    """Stable per pooled token, as the IDE extension keeps one per installation."""
    return str(uuid.uuid5(_SESSION_NS, upstream_name))


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


def parse_line(line: bytes) -> tuple[str, FinishReason | None, bool]:
    """One NDJSON line → (text, finish_reason, end). Unknown/empty lines are ignored."""
    line = line.strip()
    if not line:
        return "", None, False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "", None, False
    if not isinstance(obj, dict):
        return "", None, False
    text = obj.get("text") or ""
    if not isinstance(text, str):
        text = ""
    stop = obj.get("stop_reason")
    if stop is not None:
        return text, "length" if stop in (2, "MAX_TOKENS") else "stop", True
    if obj.get("done") is True:
        return text, "stop", True
    return text, None, False


class AugmentProvider:
    def __init__(self, session: aiohttp.ClientSession, user_agent: str, blocked_cooldown_s: float) -> None:
        self.session = session
        self.user_agent = user_agent
        self.blocked_cooldown_s = blocked_cooldown_s

    async def stream(
        self, upstream: UpstreamRoute, request: ChatRequest, model: ModelSpec, request_id: str
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
                try:
                    async for line in resp.content:
                        if ended:
                            continue  # drain to EOF so the connection goes back to the pool
                        text, finish, ended = parse_line(line)
                        if not completed and text and stream_error_text(text):  # only the first text
                            raise classify_augment_failure(200, text, None, self.blocked_cooldown_s)
                        if text or ended:
                            completed = True
                            yield Piece(text, finish)
                    if not ended:
                        yield Piece("", "stop")  # a body that just ends is still an answer
                except (GeneratorExit, asyncio.CancelledError):
                    resp.close()  # the client left: cut the upstream request, do not pool it
                    raise
