"""Anthropic wire format out of the proxy: the Messages event stream, whole messages, errors,
token estimates.

A stream is Anthropic's exact event sequence: ``message_start``; per content block
``content_block_start``, ``content_block_delta`` (``text_delta`` / ``input_json_delta``),
``content_block_stop``; a ``ping`` after the first block starts; ``message_delta`` with the
stop reason and usage; ``message_stop``. An upstream that speaks Anthropic itself has its events
relayed as they came (only ``message_start`` is rewritten, to name the client's model), so
blocks the proxy does not model (thinking, citations, server tools) reach the client unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from .errors import anthropic_error_body
from .messages_schema import Block, CountTokensRequest, MessagesRequest
from .openai_format import IMAGE_TOKENS, estimate_tokens
from .providers.base import FinishReason, Piece, ToolCall, UpstreamEvent

# Neutral finish reasons (providers/base.py) in Anthropic's words, and back.
STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
    "pause_turn": "pause_turn",
}
FINISH_OF: dict[str, FinishReason] = {v: k for k, v in STOP_REASONS.items()} | {
    "model_context_window_exceeded": "length"
}
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def message_id() -> str:
    return "msg_" + os.urandom(12).hex()


def sse(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block_tokens(block: Block) -> int:
    if block.type == "image":
        return IMAGE_TOKENS
    total = estimate_tokens(block.text or "") + estimate_tokens(block.name or "")
    if block.input is not None:
        total += estimate_tokens(orjson.dumps(block.input).decode())
    if isinstance(block.content, str):
        total += estimate_tokens(block.content)
    elif block.content:
        total += sum(_block_tokens(b) for b in block.content)
    return total


def estimate_input_tokens(request: MessagesRequest | CountTokensRequest) -> int:
    """System, every block of every message, the tool definitions (docs/proxy.md, estimates);
    computed once per request (a stream announces it first and accounts it at the end)."""
    known = request.input_tokens
    if known is None:
        request.input_tokens = known = _estimate(request)
    return known


def _estimate(request: MessagesRequest | CountTokensRequest) -> int:
    total = 2
    if isinstance(request.system, str):
        total += estimate_tokens(request.system)
    elif request.system:
        total += sum(_block_tokens(b) for b in request.system)
    for m in request.messages:
        total += 4
        if isinstance(m.content, str):
            total += estimate_tokens(m.content)
        else:
            total += sum(_block_tokens(b) for b in m.content)
    if request.tools:
        tools = request.raw.get("tools") or [t.model_dump(exclude_none=True) for t in request.tools]
        total += estimate_tokens(orjson.dumps(tools).decode())
    return total


_NONE, _TEXT, _TOOL = 0, 1, 2  # what kind of block is open


class EventWriter:
    """One streamed message. Text pieces open a text block, each tool call a tool_use block."""

    __slots__ = (
        "_blocks",
        "_head",
        "_open",
        "_relayed",
        "_started",
        "_tail",
        "_tools",
        "input_tokens",
        "model",
    )

    def __init__(self, model: str, input_tokens: int) -> None:
        self.model = model
        self.input_tokens = input_tokens
        self._started = False
        self._relayed = False
        self._blocks = 0  # blocks started so far; only the last one can be open
        self._open = _NONE
        self._tools: dict[int, int] = {}  # tool-call index → block index
        self._head = self._tail = b""

    def _begin(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return sse({"type": "message_start", "message": message})

    def _start_block(self, block: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._begin()
        out += self._close()
        index = self._blocks
        self._blocks += 1
        out += sse({"type": "content_block_start", "index": index, "content_block": block})
        return out + PING if index == 0 else out

    def _close(self) -> bytes:
        if self._open == _NONE:
            return b""
        self._open = _NONE
        return sse({"type": "content_block_stop", "index": self._blocks - 1})

    def content(self, text: str) -> bytes:
        if self._open == _TEXT:
            return self._head + orjson.dumps(text) + self._tail
        out = self._start_block({"type": "text", "text": ""})
        self._open = _TEXT
        index = self._blocks - 1
        # Every delta of this block is the same bytes around its text: serialised once.
        marker = "\x00tokenpool-text\x00"
        event = sse(
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": marker}}
        )
        self._head, _, self._tail = event.rpartition(orjson.dumps(marker))
        return out + self._head + orjson.dumps(text) + self._tail

    def other(self, piece: Piece) -> bytes:
        if piece.event is not None:
            return self._relay(piece.event)
        out = self.content(piece.text) if piece.text else b""
        for call in piece.tool_calls:
            out += self._tool(call)
        return out

    def _tool(self, call: ToolCall) -> bytes:
        out = b""
        if call.id is not None or call.index not in self._tools:
            block = {"type": "tool_use", "id": call.id or "", "name": call.name or "", "input": {}}
            out = self._start_block(block)
            self._open = _TOOL
            self._tools[call.index] = self._blocks - 1
        if call.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.arguments}
            out += sse({"type": "content_block_delta", "index": self._tools[call.index], "delta": delta})
        return out

    def _relay(self, event: UpstreamEvent) -> bytes:
        self._started = self._relayed = True
        original = event.data.get("message")
        if event.name != "message_start" or not isinstance(original, dict):
            return event.raw
        return sse({**event.data, "message": {**original, "model": self.model}})

    def end(self, finish: FinishReason, prompt: int, completion: int) -> bytes:
        if self._relayed:
            return b""  # the upstream's own message_delta and message_stop went out
        out = b"" if self._started else self._begin()
        delta = {"stop_reason": STOP_REASONS[finish], "stop_sequence": None}
        usage = {"input_tokens": prompt, "output_tokens": completion}
        return (
            out
            + self._close()
            + sse({"type": "message_delta", "delta": delta, "usage": usage})
            + MESSAGE_STOP
        )

    def fail(self, message: str) -> bytes:
        return sse(anthropic_error_body(502, message))


def _tool_input(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def message_from_pieces(
    model: str, pieces: list[Piece], finish: FinishReason, prompt: int, completion: int
) -> dict[str, Any]:
    """A whole message: text blocks, tool_use blocks (arguments joined per call), stop reason."""
    content: list[dict[str, Any]] = []
    calls: dict[int, tuple[dict[str, Any], list[str]]] = {}  # call index → (its block, arguments)
    for piece in pieces:
        if piece.text:
            if content and content[-1]["type"] == "text":
                content[-1]["text"] += piece.text
            else:
                content.append({"type": "text", "text": piece.text})
        for call in piece.tool_calls:
            if call.index not in calls:
                block = {"type": "tool_use", "id": call.id or "", "name": call.name or "", "input": {}}
                calls[call.index] = (block, [])
                content.append(block)
            calls[call.index][1].append(call.arguments)
    for block, arguments in calls.values():
        block["input"] = _tool_input("".join(arguments))
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[finish],
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def message_from_events(model: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole message from an Anthropic upstream's events, the way Anthropic's SDKs build it."""
    message: dict[str, Any] = {"id": message_id(), "type": "message", "role": "assistant"}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for data in events:
        kind, index = data.get("type"), data.get("index")
        if kind == "message_start":
            message.update(_dict(data.get("message")))
        elif kind == "content_block_start" and isinstance(index, int):
            blocks[index] = dict(_dict(data.get("content_block")))
        elif kind == "content_block_delta" and isinstance(index, int) and index in blocks:
            _apply(blocks[index], partial, index, _dict(data.get("delta")))
        elif kind == "message_delta":
            delta = _dict(data.get("delta"))
            message.update({k: v for k, v in delta.items() if k in ("stop_reason", "stop_sequence")})
            message["usage"] = {**_dict(message.get("usage")), **_dict(data.get("usage"))}
    for index, text in partial.items():
        blocks[index]["input"] = _tool_input(text)
    message.update(model=model, content=[blocks[i] for i in sorted(blocks)])
    return message


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _apply(block: dict[str, Any], partial: dict[int, str], index: int, delta: dict[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "input_json_delta":
        partial[index] = partial.get(index, "") + str(delta.get("partial_json") or "")
    elif kind == "citations_delta":
        if not isinstance(block.get("citations"), list):
            block["citations"] = []
        block["citations"].append(delta.get("citation"))
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    else:  # text_delta, thinking_delta: append to the field of that name
        field = {"text_delta": "text", "thinking_delta": "thinking"}.get(str(kind))
        if field is not None:
            block[field] = str(block.get(field) or "") + str(delta.get(field) or "")


class AnthropicDialect:
    """The chat path's output in Anthropic's words (chat.py)."""

    def writer(self, request: MessagesRequest) -> EventWriter:
        return EventWriter(request.model, estimate_input_tokens(request))

    def answer(
        self,
        request: MessagesRequest,
        pieces: list[Piece],
        finish: FinishReason,
        prompt: int,
        completion: int,
    ) -> dict[str, Any]:
        events = [p.event.data for p in pieces if p.event is not None]
        if events:
            return message_from_events(request.model, events)
        return message_from_pieces(request.model, pieces, finish, prompt, completion)

    def prompt_tokens(self, request: MessagesRequest) -> int:
        return estimate_input_tokens(request)


def models_list(ids: list[str]) -> dict[str, Any]:
    """``GET /v1/models`` as Anthropic's clients expect it."""
    data = [{"type": "model", "id": i, "display_name": i, "created_at": "1970-01-01T00:00:00Z"} for i in ids]
    return {
        "data": data,
        "has_more": False,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }
