"""OpenAI wire format out of the proxy: completion objects, SSE chunks, errors, token estimates.

Token counts are *estimated* (no upstream reports them for Augment): ASCII text counts one token
per 4 characters (rounded up), every other character one token (CJK text is roughly one token
per character in common BPE vocabularies), plus 4 tokens per message and 2 for the reply priming,
as OpenAI's own counting guide does. Stream and non-stream use the same function, so the two
modes report the same numbers for the same answer.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from .providers.base import FinishReason, Piece, ToolCall
from .schemas import ChatMessage, ChatRequest, ToolDefinition

# An image counts as this many tokens (a rough middle of what vendors charge for one).
IMAGE_TOKENS = 1000
# Neutral finish reasons (providers/base.py) in OpenAI's words.
FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "stop_sequence": "stop",
    "pause_turn": "stop",
}


def estimate_tokens(text: str) -> int:
    tally = TextTally()
    tally.add(text)
    return tally.tokens()


class TextTally:
    """The token estimate of a text fed in pieces, without keeping the text (a relayed stream
    would otherwise hold its whole answer): about 4 ASCII characters per token, one per other
    character."""

    __slots__ = ("ascii", "chars")

    def __init__(self) -> None:
        self.chars = 0
        self.ascii = 0

    def add(self, text: str) -> None:
        self.chars += len(text)
        self.ascii += len(text) if text.isascii() else sum(1 for c in text if c < "\x80")

    def tokens(self) -> int:
        return (self.ascii + 3) // 4 + (self.chars - self.ascii) if self.chars else 0


def estimate_prompt_tokens(messages: list[ChatMessage], tools: list[ToolDefinition] | None = None) -> int:
    """Text of every message (tool calls: name and arguments), images, and the tool definitions."""
    total = 2
    for m in messages:
        if isinstance(m.content, str):
            total += estimate_tokens(m.content)
        elif m.content:
            total += sum(
                estimate_tokens(p.text or "") if p.image_url is None else IMAGE_TOKENS for p in m.content
            )
        for call in m.tool_calls or ():
            total += estimate_tokens(call.function.name) + estimate_tokens(call.function.arguments)
        total += 4
    if tools:
        total += estimate_tokens(orjson.dumps([t.model_dump(exclude_none=True) for t in tools]).decode())
    return total


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(
    cid: str,
    model: str,
    text: str,
    finish: str,
    prompt: int,
    completion_tokens: int,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message.update(content=text or None, tool_calls=tool_calls)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(prompt, completion_tokens),
    }


def merged_tool_calls(pieces: list[Piece]) -> list[dict[str, Any]]:
    """The answer's tool calls, their streamed pieces joined per index, in index order."""
    calls: dict[int, dict[str, Any]] = {}
    for piece in pieces:
        for c in piece.tool_calls:
            call = calls.get(c.index)
            if call is None:
                call = calls[c.index] = {
                    "id": "",
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            if c.id:
                call["id"] = c.id
            if c.name:
                call["function"]["name"] = c.name
            call["function"]["arguments"] += c.arguments
    return [calls[i] for i in sorted(calls)]


def tool_call_delta(c: ToolCall) -> dict[str, Any]:
    """One ``delta.tool_calls`` entry: id, type and name only on a call's first piece."""
    fn: dict[str, Any] = {"arguments": c.arguments}
    if c.name is not None:
        fn = {"name": c.name, "arguments": c.arguments}
    if c.id is None:
        return {"index": c.index, "function": fn}
    return {"index": c.index, "id": c.id, "type": "function", "function": fn}


class ChunkWriter:
    """Serialises one streamed completion: role in the first delta only, then content and
    tool-call deltas, the finish chunk, the usage chunk when asked for, ``[DONE]``."""

    __slots__ = ("_created", "_first", "_head", "_tail", "cid", "include_usage", "model")

    def __init__(self, cid: str, model: str, include_usage: bool = False) -> None:
        self.cid = cid
        self.model = model
        self.include_usage = include_usage
        self._created = int(time.time())
        self._first = True
        # A content event is the same bytes around its text every time: serialised once, split
        # where the text goes (a relayed stream writes one event per upstream chunk).
        marker = "\x00tokenpool-text\x00"
        # (rpartition: the text comes after the id and model, whatever those contain)
        self._head, _, self._tail = self._event({"content": marker}, None).rpartition(orjson.dumps(marker))

    def _event(self, delta: dict[str, Any], finish: str | None, extra: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if extra:
            obj.update(extra)
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def content(self, text: str) -> bytes:
        if self._first:
            self._first = False
            return self._event({"role": "assistant", "content": text}, None)
        return self._head + orjson.dumps(text) + self._tail

    def other(self, piece: Piece) -> bytes:
        """Tool-call deltas (and any text the same upstream chunk carried)."""
        delta: dict[str, Any] = {"tool_calls": [tool_call_delta(c) for c in piece.tool_calls]}
        if piece.text:
            delta = {"content": piece.text, **delta}
        if self._first:
            self._first = False
            delta = {"role": "assistant", "content": piece.text or None, **delta}
        return self._event(delta, None)

    def finish(self, reason: str) -> bytes:
        if self._first:  # an empty answer still announces the role
            self._first = False
            return self._event({"role": "assistant", "content": ""}, reason)
        return self._event({}, reason)

    def end(self, finish: FinishReason, prompt: int, completion_tokens: int) -> bytes:
        """The finish chunk, the usage chunk if the client asked for it, ``[DONE]``."""
        out = self.finish(FINISH[finish])
        if self.include_usage:
            out += self.usage(prompt, completion_tokens)
        return out + self.DONE

    def fail(self, message: str) -> bytes:
        """What ends a stream whose upstream failed after the first chunk went out."""
        return self.error(message) + self.DONE

    def usage(self, prompt: int, completion_tokens: int) -> bytes:
        obj = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [],
            "usage": usage(prompt, completion_tokens),
        }
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    @staticmethod
    def error(message: str, type_: str = "upstream_error", code: str = "upstream_stream_failed") -> bytes:
        return b"data: " + orjson.dumps(error_body(message, type_, code)) + b"\n\n"

    DONE = b"data: [DONE]\n\n"


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class OpenAIDialect:
    """The chat path's output in OpenAI's words (chat.py): stream writer, answer, prompt estimate."""

    def writer(self, request: ChatRequest) -> ChunkWriter:
        return ChunkWriter(completion_id(), request.model, request.include_usage)

    def answer(
        self,
        request: ChatRequest,
        pieces: list[Piece],
        finish: FinishReason,
        prompt: int,
        completion_tokens: int,
    ) -> dict[str, Any]:
        text = "".join(p.text for p in pieces if p.text)
        calls = merged_tool_calls(pieces)
        return completion(
            completion_id(), request.model, text, FINISH[finish], prompt, completion_tokens, calls
        )

    def prompt_tokens(self, request: ChatRequest) -> int:
        return estimate_prompt_tokens(request.messages, request.tools)
