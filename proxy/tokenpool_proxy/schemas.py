"""The OpenAI chat request as the proxy accepts it (validated once, at the edge).

Unknown fields are kept (``extra="allow"``) so an OpenAI-compatible upstream receives what the
client sent (``ChatRequest.as_sent``), but everything the proxy itself reads is typed: a wrong
type is a 400, never a 500 further down.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

M = TypeVar("M", bound=BaseModel)
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: ImageURL | None = None

    @model_validator(mode="after")
    def _text_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs text")
        return self


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    arguments: str


class ToolCallRequest(BaseModel):
    """An earlier call of the assistant, as the client sends it back."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    type: str = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallRequest] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(BaseModel):
    """``{"type": "function", "function": {...}}``; other tool types are kept for pass-through."""

    model_config = ConfigDict(extra="allow")

    type: str = "function"
    function: FunctionDefinition | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = None  # only 1 is served (checked when the provider prepares the request)
    tools: list[ToolDefinition] | None = None
    # "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def as_sent(self) -> dict[str, Any]:
        """The request as the client sent it (the fields it set, unknown ones included): what a
        pass-through upstream receives. Rebuilt on demand: keeping the client's own object would
        cost every request a private attribute."""
        return self.model_dump(exclude_unset=True)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class BadRequest(Exception):
    """A client error with the message and (OpenAI) param to report."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse_chat_request(body: bytes) -> ChatRequest:
    data = load_object(body)
    return validate(ChatRequest, data)


def load_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (400 ``invalid_json`` otherwise)."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``model`` from ``data``; the first validation error as a :class:`BadRequest` naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # The deepest error: of a union (text or blocks), the branch the client meant got furthest.
        err = max(exc.errors(), key=lambda e: len(e["loc"]))
        param = ".".join(str(p) for p in err["loc"] if not _union_branch(p)) or None
        raise BadRequest(f"{param}: {err['msg']}" if param else err["msg"], param=param) from None


def _union_branch(part: int | str) -> bool:
    """Pydantic's location names a union's branch by its type (``str``, ``list[Block]``)."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool"))
