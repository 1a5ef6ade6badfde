"""Gauges of the usage service and the pool, computed at scrape time from the live objects, so
the request path pays nothing for them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tokenpool.contract.compiled import KIND_USER

from .service import UsageService

# (upstream tokens in flight, their summed maxConcurrency, tokens by health state)
PoolStats = Callable[[], tuple[int, int, dict[str, int]]]


class LiveGauges(Collector):
    def __init__(self, service: UsageService, pool: PoolStats) -> None:
        self._service = service
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "tokenpool_proxy_in_flight_requests",
            "Admitted client requests not finished yet",
            value=sum(self._service.limiter.in_flight.values()),
        )
        busy, capacity, states = self._pool()
        yield GaugeMetricFamily(
            "tokenpool_proxy_pool_utilisation",
            "Upstream slots in use over all slots (sum of maxConcurrency)",
            value=busy / capacity if capacity else 0.0,
        )
        by_state = GaugeMetricFamily(
            "tokenpool_proxy_upstream_tokens", "Upstream tokens by health", labels=["state"]
        )
        for state in ("Healthy", "CoolingDown", "Unhealthy"):
            by_state.add_metric([state], states.get(state, 0))
        yield by_state
        flusher = self._service.flusher
        if flusher is None:
            return
        lag = time.monotonic() - flusher.last_success if flusher.last_success is not None else 0.0
        yield GaugeMetricFamily(
            "tokenpool_proxy_usage_flush_lag_seconds",
            "Seconds since the last complete usage flush (0 before the first)",
            value=lag,
        )
        yield GaugeMetricFamily(
            "tokenpool_proxy_usage_unflushed_requests",
            "Counted requests not yet written to the API server",
            value=sum(
                d.total.requests
                for part in (flusher.book.pending, flusher.book.flushing)
                for (kind, _), d in part.items()
                if kind == KIND_USER
            ),
        )
        for name, value, doc in (
            ("tokenpool_proxy_status_writes", flusher.writes, "Successful status writes"),
            (
                "tokenpool_proxy_status_changed_objects",
                flusher.changed,
                "Objects a flush had usage or health to write for (at most one write each)",
            ),
            ("tokenpool_proxy_status_conflicts", flusher.conflicts, "Status writes refused with 409"),
            ("tokenpool_proxy_status_failures", flusher.failures, "Status writes given up until next flush"),
        ):
            yield CounterMetricFamily(name, doc, value=value)
