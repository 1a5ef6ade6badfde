"""Plugging usage accounting into the proxy app: the sink, the router, metrics and the
flusher's life (started with the app, stopped — with a final flush — after uvicorn stopped
accepting connections and finished the in-flight requests, i.e. in the lifespan's shutdown)."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import FastAPI

from ..services import Services
from . import InMemoryUsage
from .clock import OffsetClock
from .flush import Flusher
from .health_status import HealthSync
from .live_gauges import LiveGauges
from .router import router
from .service import UsageService
from .stats import pool_gauges
from .store import StatusStore
from .usage_metrics import UsageMetrics

log = logging.getLogger(__name__)


def install(app: FastAPI, svc: Services) -> None:
    """Replace the default in-memory sink (a sink a test injected stays) and add the routes."""
    app.include_router(router)
    if not isinstance(svc.usage, InMemoryUsage):
        return
    settings = svc.settings
    clock = OffsetClock(timedelta(seconds=settings.usage_clock_offset_seconds))
    metrics = UsageMetrics(svc.metrics.registry, settings.metrics_per_user)
    service = UsageService(clock, metrics)
    metrics.registry.register(LiveGauges(service, lambda: pool_gauges(svc)))
    svc.usage = service


async def start(svc: Services, store: StatusStore) -> None:
    """Read the cluster's usage and health once, then write back every interval through
    ``store``. Runs in the lifespan's startup, before traffic."""
    service = svc.usage
    if not isinstance(service, UsageService):
        return
    settings = svc.settings
    flusher = Flusher(
        service.book,
        store,
        service.clock,
        settings.usage_flush_interval_seconds,
        HealthSync(svc.health, service.clock),
    )
    try:
        await flusher.prime()
    except Exception:
        # Not fatal: the first flush reads again; until then limits count this replica only.
        log.exception("could not read usage status at startup")
    service.start(flusher)


async def stop(svc: Services) -> None:
    """Stop the periodic write-back and flush what is left (the graceful shutdown's last step)."""
    if isinstance(svc.usage, UsageService):
        await svc.usage.stop()
