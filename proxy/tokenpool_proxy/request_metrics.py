"""Prometheus metrics of one proxy process, in a registry of its own (tests build many apps).

Labels never carry credentials or personal tokens: routes are path templates, upstreams are
UpstreamToken names, outcomes are error categories.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tokenpool_proxy_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tokenpool_proxy_request_seconds",
            "Time to the end of the response",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.attempts = Counter(
            "tokenpool_proxy_upstream_attempts",
            "Upstream attempts by outcome (Success or an error category)",
            ["upstream", "outcome"],
            registry=self.registry,
        )
        self.routes = Gauge("tokenpool_proxy_routes", "Routes in the index", ["kind"], registry=self.registry)
        self.ready = Gauge(
            "tokenpool_proxy_ready", "1 once the first full sync completed", registry=self.registry
        )

        # Label children cached: ``labels()`` costs more than the increment itself.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, route: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def attempt(self, upstream: str, outcome: str) -> None:
        self._child(self.attempts, upstream, outcome).inc()

    def route_changed(self, name: str, old: Any, new: Any) -> None:
        """Route index listener: a token that is gone takes its series with it (bounded memory)."""
        if new is not None:
            return
        for key in [k for k in self._children if k[0] == self.attempts._name and k[1] == name]:
            del self._children[key]
            self.attempts.remove(*key[1:])

    def render(self, ready: bool, counts: dict[str, int]) -> bytes:
        self.ready.set(1 if ready else 0)
        for kind, n in counts.items():
            self.routes.labels(kind).set(n)
        return generate_latest(self.registry)
