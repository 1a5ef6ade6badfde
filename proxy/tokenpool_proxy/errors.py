"""Errors of the OpenAI-compatible and Anthropic APIs, each in its own shape with the right
HTTP status: OpenAI's ``{"error": {message, type, param, code}}``, Anthropic's
``{"type": "error", "error": {type, message}}`` for requests in Anthropic's dialect (the
``/v1/messages`` paths, or an ``anthropic-version`` header).

Route code raises :class:`ApiError`; one exception handler renders it. Validation errors and
unexpected HTTP errors of the framework are mapped here too, so no path answers FastAPI's own
``{"detail": ...}`` shape on ``/v1``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .openai_format import error_body
from .responses import JSON

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str) -> dict[str, Any]:
    kind = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def speaks_anthropic(request: Request) -> bool:
    return request.url.path.startswith("/v1/messages") or "anthropic-version" in request.headers


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def response(self, anthropic: bool = False, request_id: str = "") -> JSON:
        headers = {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after else None
        if anthropic:
            body = anthropic_error_body(self.status, self.message)
            if request_id:
                body["request_id"] = request_id
        else:
            body = error_body(self.message, self.type, self.code, self.param)
        return JSON(body, status_code=self.status, headers=headers)


class PluginError(Exception):
    """An error of the plugin API: ``{"error": message}`` (DELETE's 404 adds ``"status": "error"``)."""

    def __init__(self, status: int, message: str, with_status: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"status": "error", "error": message} if with_status else {"error": message}


class BodyTooLarge(Exception):
    """Raised by the edge middleware's ``receive`` when a body passes the size limit."""


def install(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSON:
        assert isinstance(exc, ApiError)
        return exc.response(speaks_anthropic(request))

    async def validation_error(request: Request, exc: Exception) -> JSON:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()))
        error = ApiError(400, f"{param}: {first.get('msg')}", "invalid_request", param or None)
        return error.response(speaks_anthropic(request))

    async def http_error(request: Request, exc: Exception) -> JSON:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith("/api/"):
            return JSON({"status": "error", "error": str(exc.detail)}, status_code=exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), "http_error").response(speaks_anthropic(request))

    async def plugin_error(_: Request, exc: Exception) -> JSON:
        assert isinstance(exc, PluginError)
        return JSON(exc.body, status_code=exc.status)

    async def too_large(request: Request, _: Exception) -> JSON:
        return too_large_response(request.url.path, request.app.state.svc.settings.max_body_bytes)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(PluginError, plugin_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def too_large_response(path: str, limit: int) -> JSON:
    message = f"request body larger than {limit} bytes"
    if path.startswith("/v1"):
        return ApiError(413, message, "request_too_large").response(path.startswith("/v1/messages"))
    return JSON({"error": message}, status_code=413)
