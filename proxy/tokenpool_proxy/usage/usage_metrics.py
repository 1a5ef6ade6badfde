"""Usage, limit, pool and write-back metrics of the proxy, added to its registry.

Cardinality stays bounded: labels are outcomes, limit names and health states (fixed sets);
per-user series exist only when the ``metrics_per_user`` setting is on (users are a bounded,
admin-declared set, but some installations have many). The gauges computed at scrape time are
:mod:`.live_gauges`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
