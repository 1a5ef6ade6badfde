"""The body of Augment's ``chat-stream`` request, built from a client's conversation.

Field names, node types and image formats are observations of the IDE extensions' requests
(docs/augment-protocol.md, "Tools, images and nodes"), kept in this one module so that they can
follow the upstream in one place.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from ..anthropic_conversion import conversation_from_anthropic
from ..conversation import IMAGE_FORMATS, Conversation, Exchange, Image, ToolResult
from ..messages_schema import MessagesRequest
from ..openai_conversion import conversation_from_openai
from ..schemas import ChatRequest
from ..settings import ModelSpec

SESSION_NS = uuid.UUID("3f0b1a53-3c5e-4d43-9a53-6b0e9e3f1c11")
# Node types: request side and answer side.
NODE_TEXT = 0
NODE_TOOL_RESULT = 1
NODE_IMAGE = 2
NODE_RAW_TEXT = 0
NODE_TOOL_USE = 5
# Content items of a tool result that carries images.
RESULT_TEXT = 1
RESULT_IMAGE = 2
TOOL_SAFETY_UNKNOWN = 0  # the conservative value


@functools.lru_cache(maxsize=256)
def _history_request_id(index: int) -> str:
    return str(uuid.uuid5(SESSION_NS, f"history-{index}"))


def _image_node(node_id: int, img: Image) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": NODE_IMAGE,
        "image_node": {"image_data": img.data, "format": IMAGE_FORMATS[img.media_type]},
    }


def _tool_result_node(node_id: int, result: ToolResult) -> dict[str, Any]:
    node: dict[str, Any] = {
        "tool_use_id": result.tool_use_id,
        "content": result.text,
        "is_error": result.is_error,
    }
    if result.images:
        items: list[dict[str, Any]] = (
            [{"type": RESULT_TEXT, "text_content": result.text}] if result.text else []
        )
        items += [
            {
                "type": RESULT_IMAGE,
                "image_content": {"image_data": i.data, "format": IMAGE_FORMATS[i.media_type]},
            }
            for i in result.images
        ]
        node["content_nodes"] = items
    return {"id": node_id, "type": NODE_TOOL_RESULT, "tool_result_node": node}


def request_nodes(ex: Exchange) -> list[dict[str, Any]]:
    """Images, then tool results; the text goes in ``message`` / ``request_message``."""
    nodes = [_image_node(i, img) for i, img in enumerate(ex.images)]
    nodes += [_tool_result_node(len(nodes) + i, r) for i, r in enumerate(ex.tool_results)]
    return nodes


def response_nodes(ex: Exchange) -> list[dict[str, Any]]:
    """The answer's text node (always, unless the answer is only tool calls), then its calls."""
    answer = ex.answer
    nodes: list[dict[str, Any]] = []
    if answer or not ex.tool_uses:
        nodes.append(
            {
                "id": 0,
                "type": NODE_RAW_TEXT,
                "content": answer,
                "tool_use": {"tool_use_id": "", "tool_name": "", "input_json": ""},
                "agent_memory": {"content": ""},
            }
        )
    nodes += [
        {
            "id": i + 1,
            "type": NODE_TOOL_USE,
            "content": "",
            "tool_use": {"tool_use_id": u.id, "tool_name": u.name, "input_json": u.input_json},
        }
        for i, u in enumerate(ex.tool_uses)
    ]
    return nodes


def history_item(index: int, ex: Exchange) -> dict[str, Any]:
    return {
        "request_message": ex.message,
        "response_text": ex.answer,
        "request_id": _history_request_id(index),
        "request_nodes": request_nodes(ex),
        "response_nodes": response_nodes(ex),
    }


def to_conversation(request: ChatRequest | MessagesRequest) -> Conversation:
    if isinstance(request, ChatRequest):
        return conversation_from_openai(request)
    return conversation_from_anthropic(request)


def _guidelines(conv: Conversation) -> str:
    """The system prompt; a forced tool choice becomes an instruction (Augment has no such field)."""
    parts = list(conv.guidelines)
    if conv.forced_tool == "required":
        parts.append("Answer by calling one of the offered tools.")
    elif conv.forced_tool is not None:
        parts.append(f"Answer by calling the tool {conv.forced_tool}.")
    return "\n\n".join(parts)


def build_chat_body(request: ChatRequest | MessagesRequest, model: ModelSpec) -> dict[str, Any]:
    conv = to_conversation(request)
    tools = conv.tools
    if conv.forced_tool not in (None, "required"):
        tools = [t for t in tools if t.name == conv.forced_tool]
    flags: dict[str, Any] = {"support_raw_output": True}
    if tools:
        flags["support_parallel_tool_use"] = conv.parallel_tool_calls
    body: dict[str, Any] = {
        "message": conv.current.message,
        "chat_history": [history_item(i, ex) for i, ex in enumerate(conv.history)],
        "mode": model.augment_mode(bool(tools)),
        "user_guidelines": _guidelines(conv),
        "prefix": "",
        "suffix": "",
        "lang": "",
        "path": "",
        "agent_memories": "",
        "blobs": {"checkpoint_id": None, "added_blobs": [], "deleted_blobs": []},
        "user_guided_blobs": [],
        "external_source_ids": [],
        "tool_definitions": [
            {
                "name": t.name,
                "description": t.description,
                "input_schema_json": t.schema_json,
                "tool_safety": TOOL_SAFETY_UNKNOWN,
            }
            for t in tools
        ],
        "nodes": request_nodes(conv.current),
        "feature_detection_flags": flags,
    }
    if model.upstream_model:
        body["model"] = model.upstream_model
    return body
