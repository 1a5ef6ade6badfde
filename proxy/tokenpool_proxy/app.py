"""Builds the FastAPI application and its lifespan (shared upstream client, route watch).

``create_app(settings, index=...)`` with an index skips the Kubernetes watch: unit tests feed the
index by hand. ``main.run()`` builds it with the watch on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp

from tokenpool.kube.client import KubeClient

from . import errors
from .balancer import Balancer
from .edge import Edge
from .index import RouteIndex
from .notice_check import NoticeChecker
from .providers.anthropic_compat import AnthropicProvider
from .providers.augment import AugmentProvider
from .providers.openai_compat import OpenAIProvider
from .request_metrics import Metrics
from .route_watch import Watcher, kinds
from .routes import anthropic, openai, ops, plugin
from .services import Services
from .settings import ProxySettings
from .token_health import HealthBook
from .upstream_client import upstream_session
from .usage import InMemoryUsage, UsageSink
from .usage import wiring as usage_wiring
from .usage.kube_status import KubeStatusStore


class ProxyApp(FastAPI):
    """FastAPI with the :class:`Edge` outside Starlette's own middlewares, not inside them.

    The chat route is served from the edge: placed outermost, it skips two middleware layers (and
    their ``send`` wrappers) per request. An unexpected error there still ends as a bare 500 from
    uvicorn, as Starlette's error middleware would have answered it.
    """

    def build_middleware_stack(self) -> ASGIApp:
        fast_routes = {
            ("POST", route.path): route
            for route in (openai.chat_route, anthropic.messages_route, anthropic.count_tokens_route)
        }
        return Edge(super().build_middleware_stack(), self.state.svc, fast_routes=fast_routes)


def create_app(
    settings: ProxySettings | None = None, index: RouteIndex | None = None, usage: UsageSink | None = None
) -> FastAPI:
    settings = settings or ProxySettings()
    watch = index is None
    index = index or RouteIndex(verify_owners=True)
    health = HealthBook(
        settings.usage_window_seconds, settings.cooldown_base_seconds, settings.cooldown_max_seconds
    )
    index.upstream_listeners.append(health.route_changed)
    metrics = Metrics()
    index.upstream_listeners.append(metrics.route_changed)
    svc = Services(
        settings=settings,
        index=index,
        health=health,
        balancer=Balancer(index, health),
        usage=usage or InMemoryUsage(),
        metrics=metrics,
        providers={},
        notices=NoticeChecker(
            settings.notice_check_ttl_seconds,
            settings.connect_timeout_seconds + settings.read_timeout_seconds,
            settings.blocked_cooldown_seconds,
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = upstream_session(settings)
        svc.providers["Augment"] = AugmentProvider(session, settings.upstream_user_agent)
        svc.providers["OpenAI"] = OpenAIProvider(session)
        svc.providers["Anthropic"] = AnthropicProvider(session)
        tasks: list[asyncio.Task[None]] = []
        kube = KubeClient.from_environment(settings.kubeconfig or None) if watch else None
        if kube is not None:
            for kind in kinds(index):
                watcher = Watcher(
                    kube,
                    settings.namespace,
                    kind,
                    settings.watch_timeout_seconds,
                    settings.watch_retry_seconds,
                )
                svc.watchers.append(watcher)
                tasks.append(asyncio.create_task(watcher.run(), name=f"watch-{kind.name}"))
            # One watch of PoolUsers and UpstreamTokens: their status for usage and health, their
            # uids for the route index (routes are served only when their owner's uid matches).
            store = KubeStatusStore(
                kube, settings.namespace, settings.status_watch_timeout_seconds, settings.watch_retry_seconds
            )
            svc.watchers.append(store.watcher)
            await usage_wiring.start(svc, store)
        try:
            yield
        finally:
            await usage_wiring.stop(svc)  # the final flush: uvicorn already drained requests
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if kube is not None:
                await kube.close()
            await session.close()

    # FastAPI's native OpenTelemetry is off: the proxy has its own metrics and access log, and the
    # per-request check of the (unconfigured) providers is measurable on the hot path.
    off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = ProxyApp(
        title="tokenpool proxy",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=off,
    )
    app.state.svc = svc
    errors.install(app)
    app.include_router(plugin.router)
    app.include_router(openai.router)
    # First: matched before FastAPI's route walk.
    app.router.routes[:0] = [openai.chat_route, anthropic.messages_route, anthropic.count_tokens_route]
    app.include_router(ops.router)
    usage_wiring.install(app, svc)
    return app
