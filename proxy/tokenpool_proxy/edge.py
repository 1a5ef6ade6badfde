"""The edge of every request, as one pure ASGI middleware (cheaper than BaseHTTPMiddleware):
request id (``x-request-id``, taken from the client when sane), CORS as the original system
(``Access-Control-Allow-Origin: *``, ``OPTIONS`` → 204), the body size limit (413), metrics and
one structured access-log line per request. Routes add fields (user, upstream, model, retries)
to ``scope["tokenpool.log"]``; credentials and personal tokens never go there.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access_log import AccessLog
from .errors import BodyTooLarge, too_large_response
from .services import Services
from .settings import ProxySettings

access_logger = logging.getLogger("tokenpool.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Served on the operations port only (when one is configured): not for clients, not behind an Ingress.
OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/openapi.json"})
_NOT_FOUND = b'{"error":"not found"}'
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    # (the Anthropic SDK in a browser sends its key and version headers)
    (
        b"access-control-allow-headers",
        b"Content-Type, Authorization, x-api-key, anthropic-version, anthropic-beta, "
        b"anthropic-dangerous-direct-browser-access",
    ),
]


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return os.urandom(16).hex()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def access_writer(
    settings: ProxySettings, out: BinaryIO | None = None
) -> Callable[[dict[str, Any]], None] | None:
    """How access lines are written: JSON to stdout off the event loop (:mod:`.access_log`; same
    shape as every other log line, a fraction of the cost of a logging record on the hot path),
    or through logging as text."""
    if not settings.access_log:
        return None
    if settings.log_format == "text":

        def via_logging(entry: dict[str, Any]) -> None:
            access_logger.info("request %s", entry)

        return via_logging
    log = AccessLog(out or sys.stdout.buffer)
    second: tuple[int, str] = (-1, "")  # the formatted current second: strftime per line is costly

    def write_json(entry: dict[str, Any]) -> None:
        nonlocal second
        now = time.time()
        whole = int(now)
        if second[0] != whole:
            second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        stamp = f"{second[1]}.{int(now % 1 * 1000):03d}Z"
        head = {"ts": stamp, "level": "info", "logger": "tokenpool.access", "msg": "request"}
        log.write(orjson.dumps(head | entry) + b"\n")

    return write_json


class Edge:
    def __init__(
        self, app: ASGIApp, svc: Services, fast_routes: dict[tuple[str, str], Any] | None = None
    ) -> None:
        self.app = app
        self.svc = svc
        # (method, path) → a route served directly (routes/openai.py FastRoute.serve).
        self.fast_routes = fast_routes or {}
        self.write_access = access_writer(svc.settings)
        self.ops_port = svc.settings.ops_port

    def _misplaced(self, scope: Scope) -> bool:
        """An operations path on the public port, or anything else on the operations port."""
        if not self.ops_port:
            return False
        server = scope.get("server")
        on_ops = server is not None and server[1] == self.ops_port
        return on_ops != (scope["path"] in OPS_PATHS)

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
            elif self._misplaced(scope):
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": _NOT_FOUND})
            elif (_content_length(scope) or 0) > limit:
                await too_large_response(scope["path"], limit)(scope, receive, send_wrapper)
            elif (fast := self.fast_routes.get((scope["method"], scope["path"]))) is not None:
                await fast.serve(scope, receive_wrapper, send_wrapper)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except ClientDisconnect:
            status = 499  # the client left before its request was read: nothing to answer
            log["error"] = "client disconnected"
        finally:
            self._finish(scope, log, status, started)

    def _finish(self, scope: Scope, log: dict[str, Any], status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.svc.metrics.request(template, status, elapsed)
        if self.write_access is not None:
            log.update(
                method=scope["method"], path=template, status=status, latency_ms=round(elapsed * 1000, 3)
            )
            self.write_access(log)
