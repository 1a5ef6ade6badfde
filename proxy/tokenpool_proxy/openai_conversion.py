"""OpenAI chat request → :class:`~.conversation.Conversation` (for Augment upstreams).

By role, not position: ``system``/``developer`` → guidelines wherever they are; ``user``
(and the legacy ``function`` role) → user text and images; ``tool`` → a tool result for its
``tool_call_id``; ``assistant`` → answer text and its ``tool_calls``. Text parts of one message
are concatenated; image parts must be data URLs.
"""

from __future__ import annotations

import orjson

from .conversation import Builder, Conversation, ToolResult, ToolSpec, ToolUse, image_from_data_url
from .schemas import BadRequest, ChatMessage, ChatRequest

EMPTY_SCHEMA = '{"type":"object","properties":{}}'


def message_text(msg: ChatMessage, param: str) -> str:
    """A message's text: a string, or its text parts joined (``refusal`` parts count as text)."""
    content = msg.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "refusal" and msg.role == "assistant":
            texts.append(str(getattr(part, "refusal", "") or ""))
        else:
            raise _unsupported(part.type, f"{param}.content.{i}")
    return "".join(texts)


def _unsupported(kind: str, param: str) -> BadRequest:
    return BadRequest(
        f"content part type {kind!r} is not supported by Augment upstreams",
        param=param,
        code="unsupported_content",
    )


def _user_content(b: Builder, msg: ChatMessage, param: str) -> None:
    content = msg.content
    if not isinstance(content, list):
        b.user_text(content or "")
        return
    texts: list[str] = []
    for i, part in enumerate(content):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image_url" and part.image_url is not None:
            b.user_image(image_from_data_url(part.image_url.url, f"{param}.content.{i}.image_url.url"))
        else:
            raise _unsupported(part.type, f"{param}.content.{i}")
    if texts or not content:
        b.user_text("".join(texts))


def conversation_from_openai(request: ChatRequest) -> Conversation:
    b = Builder()
    for i, msg in enumerate(request.messages):
        param = f"messages.{i}"
        if msg.role in ("system", "developer"):
            b.guideline(message_text(msg, param))
        elif msg.role == "assistant":
            text = message_text(msg, param)
            if text or not msg.tool_calls:
                b.assistant_text(text)
            for call in msg.tool_calls or ():
                b.assistant_tool_use(ToolUse(call.id, call.function.name, call.function.arguments))
        elif msg.role == "tool":
            if not msg.tool_call_id:
                raise BadRequest("a tool message needs tool_call_id", param=f"{param}.tool_call_id")
            b.tool_result(ToolResult(msg.tool_call_id, message_text(msg, param)))
        else:  # user, function
            _user_content(b, msg, param)
    guidelines, history, current = b.finish("a user or tool message")
    conv = Conversation(guidelines, history, current)
    if request.parallel_tool_calls is False:
        conv.parallel_tool_calls = False
    _tools(conv, request)
    return conv


def _tools(conv: Conversation, request: ChatRequest) -> None:
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return
    for i, tool in enumerate(request.tools):
        fn = tool.function
        if tool.type != "function" or fn is None:
            raise BadRequest(
                f"tool type {tool.type!r} is not supported by Augment upstreams (function tools only)",
                param=f"tools.{i}",
                code="unsupported_content",
            )
        schema = orjson.dumps(fn.parameters).decode() if fn.parameters is not None else EMPTY_SCHEMA
        conv.tools.append(ToolSpec(fn.name, fn.description or "", schema))
    if choice is None or choice == "auto":
        return
    if choice == "required":
        conv.forced_tool = "required"
        return
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str) or name not in {t.name for t in conv.tools}:
        raise BadRequest(
            'tool_choice must be "none", "auto", "required" or {"type": "function", "function": '
            '{"name": <one of the tools>}}',
            param="tool_choice",
        )
    conv.forced_tool = name
