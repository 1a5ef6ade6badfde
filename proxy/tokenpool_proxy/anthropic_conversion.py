"""Anthropic Messages request → :class:`~.conversation.Conversation` (for Augment upstreams).

``system`` → guidelines; user ``text``/``image`` blocks → user text and images; ``tool_result``
blocks → tool results (their text, and their images as result images); assistant ``text`` and
``tool_use`` blocks → answer text and tool calls. ``thinking`` blocks an earlier answer carried
are dropped (Augment takes none back); any other block type is refused with a 400 naming it.
Text blocks of one message are joined by blank lines (clients split prompts into blocks).
"""

from __future__ import annotations

import orjson

from .conversation import Builder, Conversation, Image, ToolResult, ToolSpec, ToolUse, image
from .messages_schema import Block, MessagesRequest
from .schemas import BadRequest

_DROPPED = frozenset({"thinking", "redacted_thinking"})
EMPTY_SCHEMA = '{"type":"object","properties":{}}'


def _unsupported(kind: str, param: str) -> BadRequest:
    return BadRequest(
        f"content block type {kind!r} is not supported by Augment upstreams",
        param=param,
        code="unsupported_content",
    )


def _image(block: Block, param: str) -> Image:
    src = block.source
    assert src is not None  # the schema requires it
    if src.type != "base64" or src.media_type is None or src.data is None:
        raise BadRequest(
            "only base64 image sources are supported by Augment upstreams (no image links)",
            param=f"{param}.source",
            code="unsupported_content",
        )
    return image(src.media_type, src.data, f"{param}.source")


def _tool_result(block: Block, param: str) -> ToolResult:
    content = block.content
    texts: list[str] = []
    images: list[Image] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for i, part in enumerate(content or ()):
            if part.type == "text":
                texts.append(part.text or "")
            elif part.type == "image":
                images.append(_image(part, f"{param}.content.{i}"))
            else:
                raise _unsupported(part.type, f"{param}.content.{i}")
    assert block.tool_use_id is not None  # the schema requires it
    return ToolResult(block.tool_use_id, "\n\n".join(texts), bool(block.is_error), tuple(images))


def _system_text(system: str | list[Block] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(system):
        if block.type != "text":
            raise BadRequest("system blocks must be text blocks", param=f"system.{i}")
        texts.append(block.text or "")
    return "\n\n".join(texts)


def conversation_from_anthropic(request: MessagesRequest) -> Conversation:
    b = Builder()
    system = _system_text(request.system)
    if system:
        b.guideline(system)
    for i, msg in enumerate(request.messages):
        param = f"messages.{i}.content"
        user = msg.role == "user"
        if isinstance(msg.content, str):
            (b.user_text if user else b.assistant_text)(msg.content)
            continue
        texts: list[str] = []
        others = 0  # images, tool results, tool calls
        for j, block in enumerate(msg.content):
            where = f"{param}.{j}"
            if block.type == "text":
                texts.append(block.text or "")
                continue
            others += 1
            if user and block.type == "image":
                b.user_image(_image(block, where))
            elif user and block.type == "tool_result":
                b.tool_result(_tool_result(block, where))
            elif not user and block.type == "tool_use":
                assert block.id is not None and block.name is not None  # the schema requires them
                b.assistant_tool_use(ToolUse(block.id, block.name, orjson.dumps(block.input).decode()))
            elif not user and block.type in _DROPPED:
                others -= 1
            else:
                raise _unsupported(block.type, where)
        if texts or not others:  # a message of nothing else is still a turn
            (b.user_text if user else b.assistant_text)("\n\n".join(texts))
    guidelines, history, current = b.finish("a user message")
    conv = Conversation(guidelines, history, current)
    _tools(conv, request)
    return conv


def _tools(conv: Conversation, request: MessagesRequest) -> None:
    choice = request.tool_choice
    if choice is not None and choice.disable_parallel_tool_use:
        conv.parallel_tool_calls = False
    if not request.tools or (choice is not None and choice.type == "none"):
        return
    for tool in request.tools:
        if tool.type not in (None, "custom"):
            continue  # a tool Anthropic runs itself (web search, ...): Augment cannot offer it
        schema = orjson.dumps(tool.input_schema).decode() if tool.input_schema is not None else EMPTY_SCHEMA
        conv.tools.append(ToolSpec(tool.name, tool.description or "", schema))
    if choice is None or choice.type == "auto":
        return
    if choice.type == "any":
        conv.forced_tool = "required"
    elif choice.name not in {t.name for t in conv.tools}:
        raise BadRequest("tool_choice names a tool that is not in tools", param="tool_choice.name")
    else:
        conv.forced_tool = choice.name
