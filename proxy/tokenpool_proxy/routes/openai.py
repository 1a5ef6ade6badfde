"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from tokenpool.contract.compiled import UserRoute

from .. import chat
from ..anthropic_format import models_list
from ..auth import anthropic_user, openai_user, services
from ..errors import ApiError, BodyTooLarge, too_large_response
from ..messages_schema import MessagesRequest
from ..openai_format import OpenAIDialect
from ..responses import JSON
from ..schemas import BadRequest, ChatRequest, parse_chat_request
from ..services import Services
from ..settings import ModelSpec

router = APIRouter()
OPENAI = OpenAIDialect()
Svc = Annotated[Services, Depends(services)]


@router.get("/v1/models")
async def models(request: Request, svc: Svc) -> JSON:
    """The OpenAI API's models; with an ``anthropic-version`` header, the Anthropic API's."""
    if "anthropic-version" in request.headers:
        await anthropic_user(request)
        return JSON(models_list([m.id for m in svc.settings.anthropic_models]))
    await openai_user(request)
    data = [
        {"id": m.id, "object": "model", "created": 0, "owned_by": "tokenpool"} for m in svc.settings.models
    ]
    return JSON({"object": "list", "data": data})


class FastRoute(Route):
    """A plain Starlette route that records itself in the scope (for metrics labels) and can be
    served straight from the edge middleware (``serve``), skipping the router and the exception
    middlewares: on the hot path they cost about as much as the proxy's own work. ``anthropic``:
    its errors are written in Anthropic's shape."""

    anthropic = False

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        request = Request(scope, receive, send)
        response: Response
        try:
            response = await self.endpoint(request)
        except ApiError as exc:
            response = exc.response(self.anthropic, scope.get("tokenpool.log", {}).get("request_id", ""))
        except BodyTooLarge:
            response = too_large_response(scope["path"], request.app.state.svc.settings.max_body_bytes)
        await response(scope, receive, send)


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, Response]) -> Response:
    """Run ``work`` (waiting for a slot, for the upstream, or for a whole non-streamed answer);
    if the client disconnects first, cancel it: its cleanup frees the token slot and cuts the
    upstream request at once instead of when the upstream finishes.

    ``work`` runs in the current task and only the disconnect watcher gets a task of its own,
    which cancels this one when the client leaves: a second task per request and
    ``asyncio.wait`` cost more than the rest of the proxy's bookkeeping on the hot path.
    """
    current = asyncio.current_task()
    assert current is not None
    left = False

    def client_left(watcher: asyncio.Task[None]) -> None:
        nonlocal left
        if not watcher.cancelled() and watcher.exception() is None:
            left = True
            current.cancel()

    watcher = asyncio.ensure_future(_disconnected(request))
    watcher.add_done_callback(client_left)
    try:
        response = await work
    except BaseException as exc:
        # Our own cancellation is taken back; only it alone means "the client left".
        if left and current.uncancel() == 0 and isinstance(exc, asyncio.CancelledError):
            raise ClientDisconnect() from None
        raise
    finally:
        watcher.remove_done_callback(client_left)
        watcher.cancel()
    if left:  # work swallowed the cancellation and answered anyway: take it back all the same
        current.uncancel()
    return response


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def chat_completions(request: Request) -> Response:
    """The hot path, as a plain Starlette endpoint: FastAPI's dependency solving and its second
    exception wrapper cost more than the rest of the proxy's own work per request."""
    user = await openai_user(request)
    svc = await services(request)
    try:
        body = parse_chat_request(await request.body())
    except BadRequest as exc:
        raise ApiError(400, exc.message, exc.code or "invalid_request", exc.param) from None
    model = svc.settings.model(body.model)
    if model is None:
        raise ApiError(
            404, f"the model {body.model!r} does not exist; see GET /v1/models", "model_not_found", "model"
        )
    return await relay_chat(request, svc, user, body, model, OPENAI)


async def relay_chat(
    request: Request,
    svc: Services,
    user: UserRoute,
    body: ChatRequest | MessagesRequest,
    model: ModelSpec,
    dialect: chat.Dialect,
) -> Response:
    """Limits, then the chat path (chat.py) in the client's dialect: both APIs share it."""
    log = request.scope.setdefault("tokenpool.log", {})
    log["model"] = body.model
    denied = svc.usage.check_limits(user)
    if denied is not None:
        raise ApiError(429, denied.message, "user_limit_exceeded", retry_after=denied.retry_after)
    handed_off = False
    try:
        provider = svc.providers.get(model.provider)
        if provider is None:
            raise ApiError(503, "the proxy is starting", "not_ready")
        try:  # validated and converted before a token is leased: a bad request never holds a slot
            prepared = provider.prepare(body, model)
        except BadRequest as exc:
            raise ApiError(400, exc.message, exc.code or "invalid_request", exc.param) from None
        attempts = chat.Attempts(svc, user, body, model, log.get("request_id", ""), log, prepared)
        if body.stream:
            response = await unless_client_leaves(request, chat.stream(attempts, dialect))
            handed_off = True  # the stream releases the user's admission when it ends
            return response
        return await unless_client_leaves(request, chat.complete(attempts, dialect))
    finally:
        if not handed_off:
            svc.usage.release(user)


chat_route = FastRoute("/v1/chat/completions", chat_completions, methods=["POST"])
