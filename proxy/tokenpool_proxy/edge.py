"""The edge of every request, as one pure ASGI middleware (cheaper than BaseHTTPMiddleware):
request id (``x-request-id``, taken from the client when sane), CORS as the original system
(``Access-Control-Allow-Origin: *``, ``OPTIONS`` → 204), the body size limit (413), metrics and
one structured access-log line per request. Routes add fields (user, upstream, model, retries)
to ``scope["tokenpool.log"]``; credentials and personal tokens never go there.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BodyTooLarge, too_large_response
from .services import Services

access_logger = logging.getLogger("tokenpool.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Authorization"),
]


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Edge:
    def __init__(self, app: ASGIApp, svc: Services) -> None:
        self.app = app
        self.svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        log: dict[str, Any] = {"request_id": rid}
        scope["tokenpool.log"] = log
        status = 500
        extra = [(b"x-request-id", rid.encode()), *_CORS]
        limit = self.svc.settings.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        try:
            if scope["method"] == "OPTIONS":
                await send_wrapper({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            elif (_content_length(scope) or 0) > limit:
                await too_large_response(scope["path"], limit)(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            self._finish(scope, log, status, started)

    def _finish(self, scope: Scope, log: dict[str, Any], status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.svc.metrics.request(template, status, elapsed)
        if self.svc.settings.access_log and access_logger.isEnabledFor(logging.INFO):
            log.update(
                method=scope["method"], path=template, status=status, latency_ms=round(elapsed * 1000, 3)
            )
            access_logger.info("request", extra={"access": log})
