"""Builds the console's FastAPI application: the JSON API, the pages, static files, security
headers, error shapes, and the lifespan that starts the pool mirror.

``create_app(settings, backend=...)`` with a ready backend skips building one (tests).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from tokenpool.kube.client import KubeClient

from . import api_self, api_stats, api_tokens, api_users, pages_admin, pages_pool, pages_self, problems
from .backend import Backend
from .mirror import PoolMirror
from .page_kit import page_path, render_problem
from .settings import ConsoleSettings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("tokenpool.console")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def build_backend(settings: ConsoleSettings) -> Backend:
    kube = KubeClient.from_environment(settings.kubeconfig or None)
    mirror = PoolMirror(
        kube, settings.namespaces, settings.watch_timeout_seconds, settings.watch_retry_seconds
    )
    return Backend(settings, kube, mirror)


def _wants_json(request: Request) -> bool:
    return page_path(request).startswith("/api/")


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, problems.Problem)
    headers = {"Retry-After": str(exc.extra["retryAfter"])} if "retryAfter" in exc.extra else None
    if _wants_json(request):
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
    return render_problem(request, exc, headers)


async def _unreachable(request: Request, exc: Exception) -> Response:
    log.warning("the Kubernetes API did not answer (%s)", type(exc).__name__)
    return await _problem(
        request,
        problems.Problem(503, "KubernetesUnavailable", "the Kubernetes API did not answer: try again"),
    )


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = details[0] if details else {"field": "", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return await _problem(request, problems.invalid(message, details=details))


def create_app(settings: ConsoleSettings, backend: Backend | None = None) -> FastAPI:
    """The console; under ``settings.base_path`` when set (probes stay at ``/healthz``, ``/readyz``)."""
    app = _console()
    outer = app
    if settings.base_path:
        outer = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        _probes(outer)
        outer.mount(settings.base_path, app)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        b = backend or build_backend(settings)
        app.state.backend = outer.state.backend = b
        b.mirror.start()
        try:
            yield
        finally:
            await b.mirror.stop()
            if backend is None:
                await b.kube.close()

    outer.router.lifespan_context = lifespan
    return outer


def _probes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        synced = request.app.state.backend.mirror.synced
        return JSONResponse({"status": "ready" if synced else "syncing"}, status_code=200 if synced else 503)


def _console() -> FastAPI:
    app = FastAPI(
        title="tokenpool console",
        version="v1",
        description="Admin and self-service API over the tokenpool custom resources (docs/console.md).",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.add_exception_handler(problems.Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    for unreachable in (aiohttp.ClientError, TimeoutError):
        app.add_exception_handler(unreachable, _unreachable)

    @app.middleware("http")
    async def headers_and_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes browsers send Origin: null
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        # The path only: no query string (search terms), never a token (tokens never go in URLs).
        log.info(
            "%s %s %s %.1fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    _probes(app)
    for router in (
        api_self.auth,
        api_self.me,
        api_self.join,
        api_users.router,
        api_tokens.tokens,
        api_tokens.allocations,
        api_stats.router,
        pages_self.router,
        pages_admin.router,
        pages_pool.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
