"""Plugging usage accounting into the proxy app: the sink, the router, metrics, and the life of
the status watch and the flusher (started with the app, stopped — with a final flush — after
uvicorn stopped accepting connections and finished the in-flight requests, i.e. in the
lifespan's shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
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


# How long startup waits for the first list of PoolUsers and UpstreamTokens (seconds): long
# enough for tens of thousands of objects, short enough that an unreachable API server does not
# keep a replica from serving (its limits then count this replica only until the watch catches up).
FIRST_SYNC_S = 60.0


async def start(svc: Services, store: StatusStore) -> None:
    """Watch the cluster's usage and health, wait for the first list, then write back every
    interval through ``store``. Runs in the lifespan's startup, before traffic."""
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
        cache=service.cache,
    )
    if svc.index.verify_owners:
        service.cache.owners = svc.index  # the route owners' uids come from the same watch
    first_round = asyncio.Event()
    service.watch_task = asyncio.create_task(store.watch(service.cache, first_round), name="status-watch")
    try:
        await asyncio.wait_for(first_round.wait(), FIRST_SYNC_S)
    except TimeoutError:
        log.warning("usage status not listed within %.0fs; serving with this replica's counts", FIRST_SYNC_S)
    await flusher.prime()
    service.start(flusher)


async def stop(svc: Services) -> None:
    """Stop the periodic write-back, flush what is left (the graceful shutdown's last step),
    then the status watch."""
    if isinstance(svc.usage, UsageService):
        await svc.usage.stop()
        task = svc.usage.watch_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
