"""What this proxy knows about each upstream token: load, recent use and health.

One object (:class:`HealthBook`) holds it all, so the balancer, ``/api/tokens`` and the pool
figures decide from one predicate (:meth:`HealthBook.routable`), and the health write-back
(:mod:`.usage.health_status`) reads it (``snapshot()``) to publish ``status.health``.

Verdicts (docs/proxy.md, "Health"):
* ``unhealthy``: the account is unusable (revoked, suspended, out of credits). No traffic until
  the verdict is cleared in ``status.health`` (the operator's scheduled check or an admin) or the
  credential, endpoint or provider of the compiled route changes.
* cool-down: transient trouble (429, "Request blocked", 5xx, timeouts). No traffic until
  ``cooldown_until``; then *half-open*: one trial request at a time until one succeeds. Each
  failure before a success doubles the next rest (``consecutive_failures``), also across replicas
  (the count is adopted from ``status.health``).

A compiled route that changes in anything else (policy, the operator's ``healthy`` flag, labels)
keeps every verdict: only a new credential can invalidate what was learnt about the old one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenpool.contract.compiled import UpstreamRoute


@dataclass(slots=True)
class TokenState:
    in_flight: int = 0
    last_started: float = -math.inf  # monotonic
    last_used_wall: float | None = None
    # Exponentially decayed request count (time constant = the usage window): "recent use"
    # in O(1) memory whatever the request rate.
    recent: float = 0.0
    recent_at: float = 0.0
    unhealthy_reason: str | None = None
    cooldown_until: float = 0.0  # monotonic
    cooldown_reason: str = ""
    consecutive_failures: int = 0
    # A category (tokenpool.contract.status_fields), never an upstream body: it may echo secrets.
    last_error: str = ""
    last_error_wall: float | None = None  # time.time() of the latest failure

    def recent_count(self, now: float, window: float) -> float:
        return self.recent * math.exp(-(now - self.recent_at) / window) if self.recent else 0.0

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def half_open(self, now: float) -> bool:
        """Past a cool-down but not yet proven healthy again: one trial at a time."""
        return self.consecutive_failures > 0 and not self.cooling(now)

    def resting(self, now: float) -> bool:
        """No traffic now: unhealthy, or cooling down."""
        return self.unhealthy_reason is not None or self.cooling(now)


def same_account(old: UpstreamRoute, new: UpstreamRoute) -> bool:
    """Do two compiled routes speak for the same upstream account (so verdicts carry over)?"""
    return (old.token, old.endpoint, old.provider) == (new.token, new.endpoint, new.provider)


class HealthBook:
    def __init__(
        self,
        usage_window_s: float = 3600.0,
        cooldown_base_s: float = 5.0,
        cooldown_max_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._states: dict[str, TokenState] = {}
        self.usage_window_s = usage_window_s
        self.cooldown_base_s = cooldown_base_s
        self.cooldown_max_s = cooldown_max_s
        self.clock = clock

    def get(self, name: str) -> TokenState:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = TokenState()
        return state

    def routable(self, route: UpstreamRoute, now: float | None = None) -> bool:
        """Would this proxy send traffic to ``route`` now (capacity aside)? The one predicate of
        the balancer, ``/api/tokens`` and the pool figures, so they never disagree."""
        if route.suspended or not route.healthy:
            return False
        state = self._states.get(route.name)
        return state is None or not state.resting(self.clock() if now is None else now)

    def started(self, name: str) -> TokenState:
        now = self.clock()
        s = self.get(name)
        s.in_flight += 1
        s.last_started = now
        s.last_used_wall = time.time()
        s.recent = s.recent_count(now, self.usage_window_s) + 1.0
        s.recent_at = now
        return s

    def finished(self, name: str) -> None:
        s = self.get(name)
        s.in_flight = max(0, s.in_flight - 1)

    def success(self, name: str) -> None:
        s = self.get(name)
        s.consecutive_failures = 0
        s.cooldown_until = 0.0
        s.cooldown_reason = ""

    def _failed(self, s: TokenState, reason: str) -> None:
        s.consecutive_failures += 1
        s.last_error = reason
        s.last_error_wall = time.time()

    def unhealthy(self, name: str, reason: str) -> None:
        s = self.get(name)
        s.unhealthy_reason = reason
        self._failed(s, reason)

    def backoff(self, failures: int) -> float:
        """The rest after the ``failures``-th consecutive transient failure."""
        return min(self.cooldown_max_s, self.cooldown_base_s * 2 ** max(0, failures - 1))

    def cooldown(self, name: str, reason: str, seconds: float | None = None) -> float:
        """Rest the token; ``seconds`` (Retry-After, "blocked" period) or exponential backoff.
        A rest already running that ends later is never shortened."""
        s = self.get(name)
        self._failed(s, reason)
        if seconds is None:
            seconds = self.backoff(s.consecutive_failures)
        s.cooldown_until = max(s.cooldown_until, self.clock() + seconds)
        s.cooldown_reason = reason
        return seconds

    # -- verdicts learnt from status.health (other replicas, earlier runs, the operator) -------
    def adopt_unhealthy(self, name: str, reason: str, failures: int, last_error: str = "") -> None:
        s = self.get(name)
        s.unhealthy_reason = reason
        s.last_error = last_error or reason
        s.consecutive_failures = max(s.consecutive_failures, failures)

    def adopt_cooldown(
        self, name: str, reason: str, seconds: float, failures: int, last_error: str = ""
    ) -> None:
        """Rest until ``seconds`` from now at least, and count ``failures`` for the next backoff."""
        s = self.get(name)
        s.cooldown_until = max(s.cooldown_until, self.clock() + seconds)
        s.cooldown_reason = reason
        s.last_error = last_error or reason
        s.consecutive_failures = max(s.consecutive_failures, failures)

    def adopt_failures(self, name: str, failures: int) -> None:
        """Failures counted elsewhere since the last success: the next rest grows from there."""
        s = self.get(name)
        s.consecutive_failures = max(s.consecutive_failures, failures)

    def adopt_success(self, name: str) -> None:
        """Another replica's success after the last failure: the backoff starts over here too
        (only for a token not resting here: a rest of this replica is newer evidence)."""
        s = self._states.get(name)
        if s is not None and s.unhealthy_reason is None and not s.cooling(self.clock()):
            s.consecutive_failures = 0

    def forget(self, name: str) -> None:
        """Verdicts no longer hold (cleared in status, or a new credential): back to healthy."""
        s = self._states.get(name)
        if s is not None:
            s.unhealthy_reason = None
            s.cooldown_until = 0.0
            s.cooldown_reason = ""
            s.consecutive_failures = 0
            s.last_error = ""
            s.last_error_wall = None

    def drop(self, name: str) -> None:
        """The token is gone: keep nothing about it."""
        self._states.pop(name, None)

    def route_changed(self, name: str, old: UpstreamRoute | None, new: UpstreamRoute | None) -> None:
        """Route index listener: a deleted route is dropped; a new credential, endpoint or
        provider forgets the verdicts; any other change (policy, the operator's healthy flag)
        keeps them."""
        if new is None:
            self.drop(name)
        elif old is not None and not same_account(old, new):
            self.forget(name)

    def names(self) -> list[str]:
        return list(self._states)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Health per token for the status write-back (wall-clock times, no credentials)."""
        now, wall = self.clock(), time.time()
        out: dict[str, dict[str, Any]] = {}
        for name, s in self._states.items():
            out[name] = {
                "unhealthyReason": s.unhealthy_reason,
                "cooldownUntil": wall + (s.cooldown_until - now) if s.cooling(now) else None,
                "cooldownReason": s.cooldown_reason if s.cooling(now) else "",
                "consecutiveFailures": s.consecutive_failures,
                "lastError": s.last_error,
                "lastErrorAt": s.last_error_wall,
                "inFlight": s.in_flight,
            }
        return out
