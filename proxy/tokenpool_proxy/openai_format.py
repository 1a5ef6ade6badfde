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

from .schemas import ChatMessage


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    if text.isascii():
        return (len(text) + 3) // 4
    ascii_chars = sum(1 for c in text if c < "\x80")
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def estimate_prompt_tokens(messages: list[ChatMessage]) -> int:
    total = 2
    for m in messages:
        if isinstance(m.content, str):
            total += estimate_tokens(m.content)
        elif m.content:
            total += sum(estimate_tokens(p.text or "") for p in m.content)
        total += 4
    return total


def completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(
    cid: str, model: str, text: str, finish: str, prompt: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": usage(prompt, completion_tokens),
    }


class ChunkWriter:
    """Serialises one streamed completion: role in the first delta only, then content deltas."""

    __slots__ = ("_created", "_first", "_head", "_tail", "cid", "model")

    def __init__(self, cid: str, model: str) -> None:
        self.cid = cid
        self.model = model
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

    def finish(self, reason: str) -> bytes:
        if self._first:  # an empty answer still announces the role
            self._first = False
            return self._event({"role": "assistant", "content": ""}, reason)
        return self._event({}, reason)

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
