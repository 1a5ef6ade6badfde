"""Sharing what the balancer learns about upstream tokens through ``UpstreamToken.status.health``.

The balancer's :class:`tokenpool_proxy.token_health.HealthBook` is the live truth of this replica. Once
per flush :class:`HealthSync` turns its ``snapshot()`` into :class:`~tokenpool.contract.status_fields.Health`
documents and reports the tokens whose verdict changed *here* since the last flush ("news");
the flusher writes those. In the other direction it applies what other replicas wrote (read from
the API server on every flush) to the balancer, so a replica stops using a token another one
found broken within one flush interval, and an admin who clears ``status.health`` clears it
everywhere.

Only error *categories* leave the proxy (the balancer's CamelCase reasons: ``Unauthorized``,
``RateLimited``...), never the upstream's message: bodies can echo credentials.

``Unhealthy`` is sticky: a replica never writes a token back to healthy by itself (no traffic
reaches it, so there is nothing to learn); an admin or the operator's re-check clears it.
Cool-downs expire by time: a reader treats ``cooldownUntil`` in the past as healthy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from tokenpool.contract.status_fields import Health, HealthState, parse_rfc3339, rfc3339

from .clock import Clock, SystemClock

# Cool-down ends computed from monotonic clocks jitter by milliseconds between snapshots.
_SAME_INSTANT_S = 2.0


class BalancerHealth(Protocol):
    """The part of the balancer's health book the sync uses."""

    def snapshot(self) -> dict[str, dict[str, Any]]: ...

    def unhealthy(self, name: str, reason: str) -> None: ...

    def cooldown(self, name: str, reason: str, seconds: float | None = None) -> float: ...

    def forget(self, name: str) -> None: ...


def doc_from_snapshot(entry: dict[str, Any], previous: Health | None) -> Health:
    """One token of the balancer's snapshot as a status document (categories only)."""
    state: HealthState = "Healthy"
    reason = ""
    until = None
    if entry.get("unhealthyReason"):
        state, reason = "Unhealthy", entry["unhealthyReason"]
    elif entry.get("cooldownUntil"):
        state, reason = "CoolingDown", entry.get("cooldownReason") or "CoolingDown"
        until = rfc3339(datetime.fromtimestamp(entry["cooldownUntil"], UTC))
    last_error = reason or (previous.last_error if previous else "")
    return Health(
        state=state,
        reason=reason,
        last_error=last_error,
        last_error_at=previous.last_error_at if previous else None,
        cooldown_until=until,
        consecutive_failures=int(entry.get("consecutiveFailures") or 0),
    )


def same(a: Health | None, b: Health | None) -> bool:
    """Equal verdicts, ignoring clock jitter in ``cooldownUntil``."""
    a, b = a or Health(), b or Health()
    if (a.state, a.reason, a.consecutive_failures) != (b.state, b.reason, b.consecutive_failures):
        return False
    if (a.cooldown_until is None) != (b.cooldown_until is None):
        return False
    if a.cooldown_until is None or b.cooldown_until is None:
        return True
    delta = parse_rfc3339(a.cooldown_until) - parse_rfc3339(b.cooldown_until)
    return abs(delta.total_seconds()) <= _SAME_INSTANT_S


def merge_health(current: Health | None, local: Health) -> Health:
    """What a replica writes over ``current`` (read just before): its own news, except that it
    never downgrades a token another replica marked ``Unhealthy``."""
    if current is not None and current.state == "Unhealthy" and local.state != "Unhealthy":
        return local.model_copy(
            update={
                "state": "Unhealthy",
                "reason": current.reason,
                "cooldown_until": None,
                "consecutive_failures": max(current.consecutive_failures, local.consecutive_failures),
            }
        )
    return local


class HealthSync:
    def __init__(self, balancer: BalancerHealth, clock: Clock | None = None) -> None:
        self._balancer = balancer
        self._clock = clock or SystemClock()
        self._known: dict[str, Health] = {}  # this replica's verdicts as of the last flush

    def current(self) -> dict[str, Health]:
        snap = self._balancer.snapshot()
        return {name: doc_from_snapshot(entry, self._known.get(name)) for name, entry in snap.items()}

    def news(self) -> dict[str, Health]:
        """Tokens whose local verdict changed since the last flush, with the new document."""
        out = {}
        for name, doc in self.current().items():
            known = self._known.get(name)
            if same(doc, known):
                continue
            failed = doc.consecutive_failures > (known.consecutive_failures if known else 0)
            if failed or doc.state != "Healthy":  # a recovery is news, but not a new error
                doc = doc.model_copy(update={"last_error_at": rfc3339(self._clock.now())})
            out[name] = doc
        return out

    def written(self, name: str, doc: Health) -> None:
        """``doc`` is in the API server now."""
        self._known[name] = doc

    def observe(self, remote: dict[str, Health | None], now: datetime) -> None:
        """Apply the ``status.health`` of every token (None: never written or cleared) to the
        balancer, then remember the resulting verdicts as known (no news)."""
        local = self.current()
        for name, doc in remote.items():
            mine = local.get(name)
            if doc is None or doc.state == "Healthy":
                if mine is not None and mine.state == "Unhealthy" and name in self._known:
                    self._balancer.forget(name)  # written before, cleared since: by an admin
                continue
            if doc.state == "Unhealthy" and (mine is None or mine.state != "Unhealthy"):
                self._balancer.unhealthy(name, doc.reason)
            elif doc.state == "CoolingDown" and doc.cooldown_until:
                remaining = (parse_rfc3339(doc.cooldown_until) - now).total_seconds()
                mine_until = mine.cooldown_until if mine is not None else None
                later = mine_until is None or parse_rfc3339(mine_until) < parse_rfc3339(doc.cooldown_until)
                if remaining > _SAME_INSTANT_S and later and (mine is None or mine.state == "Healthy"):
                    self._balancer.cooldown(name, doc.reason, seconds=remaining)
        after = self.current()
        for name, doc in after.items():
            # A verdict that changed during the flush's I/O stays news for the next flush.
            if same(local.get(name), self._known.get(name)):
                self._known[name] = doc
