"""A conversation in neither client's words: what an OpenAI or Anthropic request becomes before
it is written as an Augment ``chat-stream`` body (docs/proxy.md, "Tool calling and images").

Augment thinks in *exchanges*: what the user side sent (text, images, tool results) and what
the assistant answered (text, tool calls). The builder groups messages into exchanges **by
role**: user-side messages (user, tool results) extend the current exchange's request until the
assistant answers; assistant messages extend its answer until the user side speaks again. The
last exchange must be unanswered: it is the request being made now.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from .schemas import BadRequest

# Augment's image formats (image_node.format).
IMAGE_FORMATS = {"image/png": 1, "image/jpeg": 2, "image/jpg": 2, "image/gif": 3, "image/webp": 4}
_DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,(.*)$", re.S)


@dataclass(frozen=True, slots=True)
class Image:
    media_type: str  # a key of IMAGE_FORMATS
    data: str  # base64


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    input_json: str  # the arguments as a JSON text


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    text: str
    is_error: bool = False
    images: tuple[Image, ...] = ()


@dataclass(slots=True)
class Exchange:
    request_text: list[str] = field(default_factory=list)
    images: list[Image] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    response_text: list[str] = field(default_factory=list)
    tool_uses: list[ToolUse] = field(default_factory=list)
    answered: bool = False

    @property
    def message(self) -> str:
        return "\n\n".join(self.request_text)

    @property
    def answer(self) -> str:
        return "\n\n".join(self.response_text)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    schema_json: str  # JSON Schema of the input, as a JSON text


@dataclass(slots=True)
class Conversation:
    guidelines: list[str]
    history: list[Exchange]
    current: Exchange
    tools: list[ToolSpec] = field(default_factory=list)
    # None: the model chooses ("auto"); "required": some tool; any other text: that tool.
    forced_tool: str | None = None
    parallel_tool_calls: bool = True


class Builder:
    """Collects messages in order; :meth:`finish` checks the conversation ends on the user side."""

    __slots__ = ("exchanges", "guidelines")

    def __init__(self) -> None:
        self.guidelines: list[str] = []
        self.exchanges: list[Exchange] = [Exchange()]

    def _asking(self) -> Exchange:
        if self.exchanges[-1].answered:
            self.exchanges.append(Exchange())
        return self.exchanges[-1]

    def _answering(self) -> Exchange:
        ex = self.exchanges[-1]
        ex.answered = True
        return ex

    def guideline(self, text: str) -> None:
        self.guidelines.append(text)

    def user_text(self, text: str) -> None:
        self._asking().request_text.append(text)

    def user_image(self, image: Image) -> None:
        self._asking().images.append(image)

    def tool_result(self, result: ToolResult) -> None:
        self._asking().tool_results.append(result)

    def assistant_text(self, text: str) -> None:
        self._answering().response_text.append(text)

    def assistant_tool_use(self, use: ToolUse) -> None:
        self._answering().tool_uses.append(use)

    def finish(self, what_may_end: str) -> tuple[list[str], list[Exchange], Exchange]:
        current = self.exchanges[-1]
        if current.answered or not (current.request_text or current.images or current.tool_results):
            raise BadRequest(
                f"the last message must be {what_may_end}", param="messages", code="invalid_messages"
            )
        return self.guidelines, self.exchanges[:-1], current


def image_from_data_url(url: str, param: str) -> Image:
    """A ``data:image/...;base64,...`` URL. Other URLs are refused: the proxy fetches nothing."""
    m = _DATA_URL.match(url)
    if m is None:
        raise BadRequest(
            "only data: URLs of base64 images are supported by Augment upstreams (no image links)",
            param=param,
            code="unsupported_content",
        )
    return image(m.group(1), m.group(2), param)


def image(media_type: str, data: str, param: str) -> Image:
    if media_type not in IMAGE_FORMATS:
        raise BadRequest(
            f"image type {media_type!r} is not supported (png, jpeg, gif, webp)",
            param=param,
            code="unsupported_content",
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image data is not valid base64", param=param, code="invalid_request") from None
    return Image(media_type, data)
