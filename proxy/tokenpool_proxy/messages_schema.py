"""The Anthropic Messages request as the proxy accepts it (``POST /v1/messages``).

As for the OpenAI request (schemas.py), unknown fields are kept and the client's own JSON object
is what an Anthropic-compatible upstream receives (``MessagesRequest.raw``); what the proxy reads
is typed, and the blocks it converts for Augment are checked for the fields their type needs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from .schemas import load_object, validate


class ImageSource(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


# The fields each block type must carry (other types are only forwarded, or refused by Augment).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "image": ("source",),
    "tool_use": ("id", "name", "input"),
    "tool_result": ("tool_use_id",),
}


class Block(BaseModel):
    """One content block: ``text``, ``image``, ``tool_use``, ``tool_result``, or another type
    (``thinking``, ``document``, ...) that only a pass-through upstream understands."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    source: ImageSource | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None

    @model_validator(mode="after")
    def _has_its_fields(self) -> Block:
        missing = [f for f in _REQUIRED.get(self.type, ()) if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.type} block needs {', '.join(missing)}")
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(BaseModel):
    """A client tool (``input_schema``), or a typed Anthropic tool (``type`` other than ``custom``)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError('tool_choice of type "tool" needs a name')
        return self


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[Block] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    metadata: dict[str, Any] | None = None
    # The client's JSON object as it came, and its anthropic-* headers: what a pass-through
    # upstream receives.
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _headers: dict[str, str] = PrivateAttr(default_factory=dict)
    _input_tokens: int | None = PrivateAttr(default=None)

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def client_headers(self) -> dict[str, str]:
        return self._headers

    @property
    def input_tokens(self) -> int | None:
        """The prompt's size as the proxy estimates it (anthropic_format.py), once computed."""
        return self._input_tokens

    @input_tokens.setter
    def input_tokens(self, value: int) -> None:
        self._input_tokens = value


class CountTokensRequest(MessagesRequest):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    max_tokens: int | None = Field(default=None, ge=1)  # type: ignore[assignment]


def parse_messages_request(body: bytes, headers: dict[str, str] | None = None) -> MessagesRequest:
    """``headers``: the client's ``anthropic-version`` / ``anthropic-beta`` (forwarded as they are)."""
    data = load_object(body)
    request = validate(MessagesRequest, data)
    request._raw = data
    request._headers = headers or {}
    return request


def parse_count_tokens_request(body: bytes) -> CountTokensRequest:
    data = load_object(body)
    request = validate(CountTokensRequest, data)
    request._raw = data
    return request
