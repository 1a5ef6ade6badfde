"""Usage, limit, pool and write-back metrics of the proxy, added to its registry.

Cardinality stays bounded: labels are outcomes, limit names and health states (fixed sets);
per-user series exist only when the ``metrics_per_user`` setting is on (users are a bounded,
admin-declared set, but some installations have many). Gauges are computed at scrape time from
the live objects, so the request path pays nothing for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tokenpool.contract.compiled import KIND_USER

if TYPE_CHECKING:
    from .service import UsageService

# (upstream tokens in flight, their summed maxConcurrency, tokens by health state)
PoolStats = Callable[[], tuple[int, int, dict[str, int]]]


class UsageMetrics:
    def __init__(self, registry: CollectorRegistry, per_user: bool = False) -> None:
        self.registry = registry
        self.records = Counter(
            "tokenpool_proxy_usage_records",
            "Counted upstream attempts and plugin hand-outs by outcome",
            ["outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "tokenpool_proxy_upstream_attempt_seconds",
            "Duration of one upstream attempt by outcome",
            ["outcome"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.rejections = Counter(
            "tokenpool_proxy_limit_rejections",
            "Requests answered 429 by a user limit",
            ["limit"],
            registry=registry,
        )
        self.per_user = (
            Counter(
                "tokenpool_proxy_user_records",
                "Counted attempts per user (only with TOKENPOOL_PROXY_METRICS_PER_USER)",
                ["user", "outcome"],
                registry=registry,
            )
            if per_user
            else None
        )
        self._by_outcome: dict[str, tuple[Counter, Histogram | None]] = {}

    def recorded(self, user: str, outcome: str, latency_s: float) -> None:
        # Label children cached per outcome: ``labels()`` costs more than the update itself.
        children = self._by_outcome.get(outcome)
        if children is None:
            children = self._by_outcome[outcome] = (
                self.records.labels(outcome),
                self.attempt_seconds.labels(outcome) if outcome != "handout" else None,
            )
        children[0].inc()
        if children[1] is not None:
            children[1].observe(latency_s)
        if self.per_user is not None:
            self.per_user.labels(user, outcome).inc()

    def rejected(self, limit: str) -> None:
        self.rejections.labels(limit).inc()

    def watch(self, service: UsageService, pool: PoolStats) -> None:
        self.registry.register(_LiveCollector(service, pool))


class _LiveCollector(Collector):
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
            ("tokenpool_proxy_status_conflicts", flusher.conflicts, "Status writes refused with 409"),
            ("tokenpool_proxy_status_failures", flusher.failures, "Status writes given up until next flush"),
        ):
            yield CounterMetricFamily(name, doc, value=value)
