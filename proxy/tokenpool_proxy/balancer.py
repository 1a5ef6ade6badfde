"""Choosing an upstream token for one request (docs/proxy.md, "Balancer").

Rules:
1. Candidates are the user's allocated upstreams (in the compiled order) of the requested
   provider that are not suspended, not unhealthy (operator's verdict or ours), not cooling down,
   and not already tried by this request.
2. Only the best (lowest) priority tier among them is used: lower tiers are failover, not overflow.
3. In that tier a token must be under ``maxConcurrency``, past ``minIntervalSeconds`` since its
   last request, and — when half-open after a cool-down — have no trial in flight.
4. Among those, the least used recently wins, then the least recently used.
5. If none is free, wait (up to the slot wait) for a release or an interval to pass, then give
   up with :class:`NoCapacity` (429 + Retry-After). No candidate at all is :class:`NoUpstream`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection
from dataclasses import dataclass

from tokenpool.contract.compiled import Provider, UpstreamRoute, UserRoute

from .index import RouteIndex
from .token_health import HealthBook


class NoUpstream(Exception):
    """The user holds no usable token of that provider: 403 (none allocated) or 503 (all resting)."""

    def __init__(self, allocated: bool, retry_after: float | None) -> None:
        super().__init__("no usable upstream token")
        self.allocated = allocated
        self.retry_after = retry_after


class NoCapacity(Exception):
    """Every candidate stayed busy for the whole slot wait: 429 with Retry-After."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("all upstream tokens are busy")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Pick:
    upstream: UpstreamRoute | None
    # When nothing is free: seconds until a token may become free by time alone (min interval);
    # None if only a release can free one.
    wake_in: float | None = None


class Lease:
    """A started request on one token; ``release()`` exactly once (idempotent)."""

    __slots__ = ("_balancer", "_released", "upstream")

    def __init__(self, balancer: Balancer, upstream: UpstreamRoute) -> None:
        self._balancer = balancer
        self.upstream = upstream
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._balancer._release(self.upstream.name)


class Balancer:
    def __init__(self, index: RouteIndex, health: HealthBook) -> None:
        self.index = index
        self.health = health
        self._waiters: list[asyncio.Future[None]] = []

    def _usable(
        self, user: UserRoute, provider: Provider, exclude: Collection[str]
    ) -> list[tuple[int, UpstreamRoute]]:
        out = []
        now = self.health.clock()
        for alloc in user.upstreams:
            route = self.index.upstream(alloc.name)
            if route is None or route.provider != provider or alloc.name in exclude:
                continue
            if self.health.routable(route, now):
                out.append((alloc.priority, route))
        return out

    def allocated(self, user: UserRoute, provider: Provider) -> bool:
        return any(
            (r := self.index.upstream(a.name)) is not None and r.provider == provider for a in user.upstreams
        )

    def pick(self, user: UserRoute, provider: Provider, exclude: Collection[str] = ()) -> Pick:
        """The pure decision (rules 1-4): a token, or how long until one may free up."""
        usable = self._usable(user, provider, exclude)
        if not usable:
            raise NoUpstream(self.allocated(user, provider), self._earliest_cooldown_end(user, provider))
        best = min(p for p, _ in usable)
        now = self.health.clock()
        window = self.health.usage_window_s
        chosen: UpstreamRoute | None = None
        chosen_key: tuple[float, float] | None = None
        wake_in: float | None = None
        for priority, route in usable:
            if priority != best:
                continue
            s = self.health.get(route.name)
            limit = 1 if s.half_open(now) else route.max_concurrency
            if s.in_flight >= limit:
                continue
            wait = s.last_started + route.min_interval_seconds - now
            if wait > 0:
                wake_in = wait if wake_in is None else min(wake_in, wait)
                continue
            key = (s.recent_count(now, window), s.last_started)
            if chosen_key is None or key < chosen_key:
                chosen, chosen_key = route, key
        return Pick(chosen, None if chosen else wake_in)

    async def acquire(
        self, user: UserRoute, provider: Provider, exclude: Collection[str] = (), wait_s: float = 0.0
    ) -> Lease:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            pick = self.pick(user, provider, exclude)
            if pick.upstream is not None:
                self.health.started(pick.upstream.name)
                return Lease(self, pick.upstream)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoCapacity(retry_after=max(1.0, math.ceil(pick.wake_in or 1.0)))
            timeout = remaining if pick.wake_in is None else min(remaining, pick.wake_in)
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                pass
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def _release(self, name: str) -> None:
        self.health.finished(name)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _earliest_cooldown_end(self, user: UserRoute, provider: Provider) -> float | None:
        now = self.health.clock()
        ends = []
        for alloc in user.upstreams:
            route = self.index.upstream(alloc.name)
            s = self.health.get(alloc.name)
            if (
                route is not None
                and route.provider == provider
                and s.cooling(now)
                and s.unhealthy_reason is None
            ):
                ends.append(s.cooldown_until - now)
        return max(1.0, math.ceil(min(ends))) if ends else None
