"""Per-user request limits (``PoolUser.spec.limits``, compiled into the user's route).

A request is admitted when, for the current UTC day and minute,

    global count in the status cache  +  this replica's unflushed count  +  admitted in-flight

is below the limit. With N replicas each one sees the others' traffic only as of their last flush,
so a limit can be overshot by at most the requests the *other* replicas admitted within one flush
interval (bounded by ``(N-1) x`` their rate x interval, and never more than ``(N-1) x limit`` per
window). ``maxConcurrentRequests`` is enforced per replica (in-flight requests are not written to
the API server), so the cluster-wide ceiling is ``N x`` the limit. See docs/usage.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from tokenpool.contract.compiled import Limits
from tokenpool.contract.status_fields import utc_date, utc_minute

from .counters import UsageBook, user_key
from .status_cache import StatusCache


@dataclass(frozen=True)
class Rejection:
    """Why a request is over quota: becomes a 429 with Retry-After and an OpenAI-shaped error."""

    limit: str  # the spec field name: requestsPerDay | requestsPerMinute | maxConcurrentRequests
    value: int
    retry_after_s: int

    @property
    def message(self) -> str:
        return f"Usage limit exceeded: {self.limit}={self.value}. Retry after {self.retry_after_s}s."

    def openai_error(self) -> dict[str, dict[str, str]]:
        return {"error": {"message": self.message, "type": "rate_limit_exceeded", "code": self.limit}}


def _seconds_until(now: datetime, boundary: datetime) -> int:
    return max(1, math.ceil((boundary - now).total_seconds()))


class Limiter:
    """Admission against the limits; :meth:`release` must follow every admitted request."""

    def __init__(self, book: UsageBook, cache: StatusCache) -> None:
        self._book = book
        self._cache = cache
        self.in_flight: dict[str, int] = {}

    def _used(self, user: str, now: datetime) -> tuple[int, int]:
        """Requests of ``user`` today and this minute: the cluster's (as cached) plus this
        replica's unflushed."""
        key = user_key(user)
        date, minute = utc_date(now), utc_minute(now)
        day, this_minute = self._book.unflushed_requests(key, date, minute)
        figures = self._cache.figures(key)
        if figures is not None:
            day += figures.requests_on(date)
            this_minute += figures.requests_in(minute)
        return day, this_minute

    def used_today(self, user: str, now: datetime) -> int:
        return self._used(user, now)[0]

    def used_this_minute(self, user: str, now: datetime) -> int:
        return self._used(user, now)[1]

    def check(self, user: str, limits: Limits, now: datetime) -> Rejection | None:
        """The first limit the next request would exceed, or None (pure: admits nothing)."""
        running = self.in_flight.get(user, 0)
        if limits.max_concurrent_requests and running >= limits.max_concurrent_requests:
            return Rejection("maxConcurrentRequests", limits.max_concurrent_requests, 1)
        per_minute, per_day = limits.requests_per_minute, limits.requests_per_day
        if not (per_minute or per_day):
            return None
        today, this_minute = self._used(user, now)
        if per_minute and this_minute + running >= per_minute:
            boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            return Rejection("requestsPerMinute", per_minute, _seconds_until(now, boundary))
        if per_day and today + running >= per_day:
            boundary = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            return Rejection("requestsPerDay", per_day, _seconds_until(now, boundary))
        return None

    def admit(self, user: str, limits: Limits, now: datetime) -> Rejection | None:
        """Check and, when admitted, count the request as in flight until :meth:`release`."""
        rejection = self.check(user, limits, now)
        if rejection is None:
            self.in_flight[user] = self.in_flight.get(user, 0) + 1
        return rejection

    def release(self, user: str) -> None:
        left = self.in_flight.get(user, 0) - 1
        if left > 0:
            self.in_flight[user] = left
        else:
            self.in_flight.pop(user, None)
