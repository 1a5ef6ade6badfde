"""Authentication of personal tokens, as FastAPI dependencies.

A personal token is looked up by its sha256 in the in-memory index (never compared in clear, so
no timing oracle on the token; never sent to the API server). Error dialects: the plugin's
(``{"error": ...}``, docs/proxy.md "Plugin API") and the API errors (:class:`ApiError`, written
in OpenAI's or Anthropic's shape by the route).
"""

from __future__ import annotations

from fastapi import Request

from tokenpool.contract.compiled import UserRoute, hash_personal_token

from .errors import ApiError, PluginError
from .services import Services


def _svc(request: Request) -> Services:
    svc: Services = request.app.state.svc
    return svc


async def services(request: Request) -> Services:
    """Dependencies are ``async``: FastAPI runs plain ``def`` ones in a worker thread."""
    return _svc(request)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def lookup(request: Request, token: str) -> UserRoute | None:
    return _svc(request).index.user_by_token_hash(hash_personal_token(token))


def _log_user(request: Request, user: UserRoute) -> None:
    log = request.scope.get("tokenpool.log")
    if log is not None:
        log["user"] = user.user


async def plugin_user(request: Request) -> UserRoute:
    """``Authorization: Bearer <PT>`` for /api/tokens (plugin dialect)."""
    token = bearer(request)
    if token is None:
        raise PluginError(401, "Missing or invalid authorization header")
    return _plugin_known_user(request, token)


async def plugin_user_info(request: Request) -> UserRoute:
    """``?token=<PT>`` or the Bearer header for /api/user/info (plugin dialect)."""
    token = request.query_params.get("token") or bearer(request)
    if not token:
        raise PluginError(400, "Missing personal token")
    return _plugin_known_user(request, token)


def _plugin_known_user(request: Request, token: str) -> UserRoute:
    user = lookup(request, token)
    if user is None:
        raise PluginError(401, "Invalid personal token")
    _log_user(request, user)
    if user.suspended:
        raise PluginError(403, "User is suspended")
    return user


async def openai_user(request: Request) -> UserRoute:
    """``Authorization: Bearer <PT>`` for /v1 (OpenAI dialect)."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, "missing API key: send your personal token as a Bearer token", "missing_api_key")
    return _api_user(request, token)


def _api_user(request: Request, token: str) -> UserRoute:
    user = lookup(request, token)
    if user is None:
        raise ApiError(401, "invalid API key (personal token)", "invalid_api_key")
    _log_user(request, user)
    if user.suspended:
        raise ApiError(403, "your user is suspended", "user_suspended")
    return user


async def anthropic_user(request: Request) -> UserRoute:
    """``x-api-key: <PT>`` (or ``Authorization: Bearer <PT>``) for the Anthropic API."""
    token = request.headers.get("x-api-key", "").strip() or bearer(request)
    if not token:
        raise ApiError(401, "missing API key: send your personal token as x-api-key", "missing_api_key")
    return _api_user(request, token)
