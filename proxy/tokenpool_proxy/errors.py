"""Errors of the OpenAI-compatible API, always in OpenAI's shape with the right HTTP status.

Route code raises :class:`ApiError`; one exception handler renders it. Validation errors and
unexpected HTTP errors of the framework are mapped here too, so no path answers FastAPI's own
``{"detail": ...}`` shape on ``/v1``.
"""

from __future__ import annotations

import math

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

    def response(self) -> JSON:
        headers = {"Retry-After": str(math.ceil(self.retry_after))} if self.retry_after else None
        return JSON(
            error_body(self.message, self.type, self.code, self.param),
            status_code=self.status,
            headers=headers,
        )


class PluginError(Exception):
    """An error of the plugin API: ``{"error": message}`` (DELETE's 404 adds ``"status": "error"``)."""

    def __init__(self, status: int, message: str, with_status: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"status": "error", "error": message} if with_status else {"error": message}


class BodyTooLarge(Exception):
    """Raised by the edge middleware's ``receive`` when a body passes the size limit."""


def install(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSON:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def validation_error(_: Request, exc: Exception) -> JSON:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()))
        return ApiError(400, f"{param}: {first.get('msg')}", "invalid_request", param or None).response()

    async def http_error(request: Request, exc: Exception) -> JSON:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith("/api/"):
            return JSON({"status": "error", "error": str(exc.detail)}, status_code=exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), "http_error").response()

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
        return ApiError(413, message, "request_too_large").response()
    return JSON({"error": message}, status_code=413)
