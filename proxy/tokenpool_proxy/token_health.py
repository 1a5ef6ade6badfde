"""What this proxy knows about each upstream token: load, recent use and health.

One object (:class:`HealthBook`) holds it all, so the balancer decides from it and the usage /
health write-back (:mod:`.usage.health_status`) can read it (``snapshot()``) to publish ``status.health``.

Health verdicts follow docs/augment-protocol.md, "Errors and what the pool does":
* ``unhealthy``: the account is unusable (revoked, suspended, out of credits). No traffic until
  the compiled route changes (an admin rotated the credential / cleared it) — see ``forget``.
* cool-down: transient trouble (429, "Request blocked", 5xx, timeouts). No traffic until
  ``cooldown_until``; then *half-open*: one trial request at a time until one succeeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
    last_error: str = (
        ""  # a category (tokenpool.contract.status_fields), never an upstream body: it may echo secrets
    )

    def recent_count(self, now: float, window: float) -> float:
        return self.recent * math.exp(-(now - self.recent_at) / window) if self.recent else 0.0

    def cooling(self, now: float) -> bool:
        return now < self.cooldown_until

    def half_open(self, now: float) -> bool:
        """Past a cool-down but not yet proven healthy again: one trial at a time."""
        return self.consecutive_failures > 0 and not self.cooling(now)


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

    def unhealthy(self, name: str, reason: str) -> None:
        s = self.get(name)
        s.unhealthy_reason = reason
        s.last_error = reason
        s.consecutive_failures += 1

    def cooldown(self, name: str, reason: str, seconds: float | None = None) -> float:
        """Rest the token; ``seconds`` (Retry-After, "blocked" period) or exponential backoff."""
        s = self.get(name)
        s.consecutive_failures += 1
        if seconds is None:
            seconds = min(self.cooldown_max_s, self.cooldown_base_s * 2 ** (s.consecutive_failures - 1))
        s.cooldown_until = max(s.cooldown_until, self.clock() + seconds)
        s.cooldown_reason = reason
        s.last_error = reason
        return seconds

    def forget(self, name: str) -> None:
        """The compiled route changed: verdicts about the old credential no longer hold."""
        s = self._states.get(name)
        if s is not None:
            s.unhealthy_reason = None
            s.cooldown_until = 0.0
            s.cooldown_reason = ""
            s.consecutive_failures = 0
            s.last_error = ""

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
                "inFlight": s.in_flight,
            }
        return out
