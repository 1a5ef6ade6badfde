"""The real :class:`~tokenpool_proxy.usage.UsageSink`: counters, limits and write-back together.

The request path only touches memory here (``check_limits``, ``release``, ``record``); the
API server is reached by the :class:`~.flush.Flusher` task, once per interval and on shutdown.
Counting rule: an UpstreamToken counts each attempt on it (``record``), a PoolUser each client
request, when it ends (``release``: a success if one of its attempts succeeded), so a request
that failed over counts one error on the first token, one success on the second and one
successful request for the user; limits count the user's requests. A plugin hand-out is one of
each at once (see docs/usage.md).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from tokenpool.contract.compiled import UserRoute
from tokenpool.contract.status_fields import Usage

from . import LimitDenied, Outcome, UpstreamCounter
from .clock import Clock
from .counters import UsageBook, upstream_key, user_key
from .flush import Flusher
from .limits import Limiter
from .merge import apply_delta
from .status_cache import StatusCache
from .usage_metrics import UsageMetrics


class UsageService:
    def __init__(self, clock: Clock, metrics: UsageMetrics) -> None:
        self.clock = clock
        self.book = UsageBook()
        # The cluster's view of every PoolUser and UpstreamToken (fed by the status watch once
        # start() runs): the other replicas' counts and verdicts, uids and resourceVersions.
        self.cache = StatusCache()
        self.limiter = Limiter(self.book, self.cache)
        self.flusher: Flusher | None = None  # set by start(): no write-back without an API server
        self.watch_task: asyncio.Task[None] | None = None  # the status watch feeding the cache
        self.metrics = metrics
        self._successes: dict[str, int] = {}  # successful attempts of requests not yet released

    # -- the request path (UsageSink) ------------------------------------------------------------
    def check_limits(self, user: UserRoute) -> LimitDenied | None:
        rejection = self.limiter.admit(user.user, user.limits, self.clock.now())
        if rejection is None:
            return None
        self.metrics.rejected(rejection.limit)
        return LimitDenied(rejection.message, float(rejection.retry_after_s))

    def release(self, user: UserRoute) -> None:
        """The admitted request ended: it leaves the in-flight count and becomes a counted one
        (in the same step, so limits never see it twice or not at all)."""
        self.limiter.release(user.user)
        # Each request has at most one successful attempt, recorded before its release; which
        # concurrent request takes which success does not change the totals.
        won = self._successes.get(user.user, 0)
        if won > 1:
            self._successes[user.user] = won - 1
        else:
            self._successes.pop(user.user, None)
        self.book.request(user.user, won > 0, self.clock.now())

    def record(
        self,
        user: str,
        upstream: str,
        outcome: Outcome,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_s: float = 0.0,
        credits: float = 0.0,
    ) -> None:
        now = self.clock.now()
        self.book.attempt(user, upstream, outcome != "error", prompt_tokens, completion_tokens, now, credits)
        if outcome == "handout":  # not admitted through check_limits: a whole request at once
            self.book.request(user, True, now)
        elif outcome == "success":
            self._successes[user] = self._successes.get(user, 0) + 1
        self.metrics.recorded(user, outcome, latency_s)

    def upstream_counter(self, upstream: str) -> UpstreamCounter:
        """Cluster-wide use count of a token (as cached + this replica's unflushed)."""
        key = upstream_key(upstream)
        figures = self.cache.figures(key)
        count = figures.total_requests if figures is not None else 0
        last = figures.last_used if figures is not None else None
        for part in (self.book.pending.get(key), self.book.flushing.get(key)):
            if part is not None:
                count += part.total.requests
                if part.last_used_at is not None:
                    ts = part.last_used_at.timestamp()
                    last = ts if last is None else max(last, ts)
        return UpstreamCounter(count, last)

    # -- reads -----------------------------------------------------------------------------------
    def view(self, key: tuple[str, str], per_upstream: bool, now: datetime | None = None) -> Usage:
        """The object's usage as this replica knows it: as cached, plus unflushed."""
        return apply_delta(
            self.cache.usage(key), self.book.unflushed(key), now or self.clock.now(), per_upstream
        )

    def user_usage(self, user: str) -> Usage:
        return self.view(user_key(user), per_upstream=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, flusher: Flusher) -> None:
        """Write back through ``flusher`` (built over this service's book) from now on."""
        self.flusher = flusher
        flusher.start()

    async def stop(self) -> None:
        """Final flush: called after the server stopped accepting and in-flight requests ended."""
        if self.flusher is not None:
            await self.flusher.stop()
