"""Prometheus metrics of one operator process, in a registry of its own (tests build many queues).

Served as ``GET /metrics`` next to ``/healthz`` (:mod:`tokenpool_operator.liveness`). Label values
come from small fixed sets — work-item kinds (``user``, ``token``, ``count``), outcomes, Kubernetes
resource plurals, write verbs, Event types and reasons — and never from object names or contents:
a thousand users must not make a thousand series, and nothing secret may leak into a scrape.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "tokenpool_operator_reconciles",
            "Reconciles of work items by kind (user, token, count) and outcome (success, or error: "
            "retried with backoff)",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "tokenpool_operator_reconcile_seconds",
            "Duration of one reconcile, failed ones included",
            ["kind"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.pending = Gauge(
            "tokenpool_operator_queue_pending",
            "Work items queued or running",
            registry=self.registry,
        )
        self.failing = Gauge(
            "tokenpool_operator_queue_failing",
            "Work items whose last reconcile failed (waiting for a retry)",
            registry=self.registry,
        )
        self.writes = Counter(
            "tokenpool_operator_writes",
            "Writes to the API by resource (configmaps, secrets, or a custom resource's status) and "
            "verb (created, updated, deleted, patched)",
            ["resource", "verb"],
            registry=self.registry,
        )
        self.events = Counter(
            "tokenpool_operator_events",
            "Kubernetes Events posted, by type (Normal, Warning) and reason",
            ["type", "reason"],
            registry=self.registry,
        )
        # Label children cached: ``labels()`` costs more than the increment itself.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def reconciled(self, kind: str, ok: bool, seconds: float) -> None:
        self._child(self.reconciles, kind, "success" if ok else "error").inc()
        self._child(self.duration, kind).observe(seconds)

    def wrote(self, resource: str, verb: str) -> None:
        self._child(self.writes, resource, verb).inc()

    def event(self, type_: str, reason: str) -> None:
        self._child(self.events, type_, reason).inc()

    def render(self, stats: dict[str, int]) -> bytes:
        """The exposition text; queue gauges are read at scrape time from ``WorkQueue.stats()``."""
        self.pending.set(stats.get("pending", 0))
        self.failing.set(stats.get("failing", 0))
        return generate_latest(self.registry)
