"""The fake's Augment answers when tools are in play (tool_script.py): text lines, then per call a
tool-use-start node (type 7, announced before the call is complete) and a tool-use node (type 5),
then ``stop_reason`` 3, as Augment does (docs/augment-protocol.md, "Tools, images and nodes")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .tool_script import plan, split

TOOL_RESULT_NODE = 1


def text_lines(text: str, chunks: int) -> list[bytes]:
    return [orjson.dumps({"text": piece}) + b"\n" for piece in split(text, chunks) if piece]


def tool_lines(
    config: dict[str, Any], body: dict[str, Any], call_id: Callable[[str], str]
) -> list[bytes] | None:
    """The answer's lines, or None when the request offers no tools and carries no results."""
    tools = [d.get("name") for d in body.get("tool_definitions") or () if isinstance(d, dict)]
    results = [
        (n["tool_result_node"].get("tool_use_id"), n["tool_result_node"].get("content"))
        for n in body.get("nodes") or ()
        if isinstance(n, dict)
        and n.get("type") == TOOL_RESULT_NODE
        and isinstance(n.get("tool_result_node"), dict)
    ]
    if not tools and not results:
        return None
    script = plan(tools, body["message"], results, config["text"], config["preamble"])
    lines = text_lines(script.text, config["chunks"])
    for i, (name, args) in enumerate(script.calls):
        use = {"tool_use_id": call_id("toolu_fake"), "tool_name": name, "input_json": args}
        start = {"id": 2 * i + 1, "type": 7, "content": "", "tool_use": {**use, "input_json": ""}}
        node = {"id": 2 * i + 2, "type": 5, "content": "", "tool_use": use}
        lines += [orjson.dumps({"text": "", "nodes": [n]}) + b"\n" for n in (start, node)]
    return [*lines, b'{"text":"","stop_reason":%d}\n' % (3 if script.calls else 1)]
