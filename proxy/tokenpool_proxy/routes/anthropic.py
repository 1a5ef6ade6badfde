"""The Anthropic Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Authenticated by the personal token as ``x-api-key`` (or a Bearer token); ``anthropic-version``
is accepted whatever its value and forwarded to Anthropic-compatible upstreams with
``anthropic-beta``. Models are the Anthropic API's own list (``TOKENPOOL_PROXY_ANTHROPIC_MODELS``).
Errors are Anthropic's ``{"type": "error", "error": {type, message}}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..anthropic_format import AnthropicDialect, estimate_input_tokens
from ..auth import anthropic_user, services
from ..errors import ApiError
from ..messages_schema import parse_count_tokens_request, parse_messages_request
from ..responses import JSON
from ..schemas import BadRequest
from ..settings import ModelSpec
from .openai import FastRoute, relay_chat

ANTHROPIC = AnthropicDialect()
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicRoute(FastRoute):
    anthropic = True


def _bad_request(exc: BadRequest) -> ApiError:
    return ApiError(400, exc.message, exc.code or "invalid_request", exc.param)


def _model(request: Request, model_id: str) -> ModelSpec:
    model = request.app.state.svc.settings.anthropic_model(model_id)
    if model is None:
        raise ApiError(404, f"model: {model_id} (not offered here; see GET /v1/models)", "model_not_found")
    assert isinstance(model, ModelSpec)
    return model


async def messages(request: Request) -> Response:
    user = await anthropic_user(request)
    svc = await services(request)
    headers = {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name))}
    try:
        body = parse_messages_request(await request.body(), headers)
    except BadRequest as exc:
        raise _bad_request(exc) from None
    return await relay_chat(request, svc, user, body, _model(request, body.model), ANTHROPIC)


async def count_tokens(request: Request) -> Response:
    """The prompt's size as the proxy estimates it for usage accounting (docs/proxy.md)."""
    await anthropic_user(request)
    try:
        body = parse_count_tokens_request(await request.body())
    except BadRequest as exc:
        raise _bad_request(exc) from None
    _model(request, body.model)
    return JSON({"input_tokens": estimate_input_tokens(body)})


messages_route = AnthropicRoute("/v1/messages", messages, methods=["POST"])
count_tokens_route = AnthropicRoute("/v1/messages/count_tokens", count_tokens, methods=["POST"])
