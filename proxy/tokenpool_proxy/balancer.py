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

Waiting requests queue on the tokens they could use, first come first served; a release wakes
one waiter of that token (a freed slot can serve one request), not every waiting request: with
thousands of requests waiting, waking them all on every release would cost thousands of futile
picks per release.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
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
        # Token name -> requests waiting for a slot of it (a request waits on all its candidates;
        # its future is set with the name of the token that woke it). Finished futures are
        # skipped and dropped when reached.
        self._waiting: dict[str, deque[asyncio.Future[str]]] = {}

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
        woken_by: str | None = None
        while True:
            pick = self.pick(user, provider, exclude)
            if pick.upstream is not None:
                self.health.started(pick.upstream.name)
                if woken_by is not None and woken_by != pick.upstream.name:
                    self._wake(woken_by)  # this request took another token: the slot is free still
                return Lease(self, pick.upstream)
            # (Woken but nothing to pick: the slot went to a request that did not wait. Its
            # release will wake the next one; passing the turn on now would only spin.)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoCapacity(retry_after=max(1.0, math.ceil(pick.wake_in or 1.0)))
            timeout = remaining if pick.wake_in is None else min(remaining, pick.wake_in)
            fut: asyncio.Future[str] = loop.create_future()
            for _, route in self._usable(user, provider, exclude):
                self._queue(route.name, fut)
            try:
                async with asyncio.timeout(timeout):
                    await fut
            except TimeoutError:
                pass  # (a wake-up may have come in the same instant: read below)
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake(fut.result())  # woken, then cancelled (the client left): pass it on
                raise
            woken_by = fut.result() if fut.done() and not fut.cancelled() else None

    def _queue(self, name: str, fut: asyncio.Future[str]) -> None:
        queue = self._waiting.get(name)
        if queue is None:
            queue = self._waiting[name] = deque()
        elif len(queue) > 64 and len(queue) % 64 == 0:  # waits that timed out pile up: sweep
            live = [f for f in queue if not f.done()]
            queue.clear()
            queue.extend(live)
        queue.append(fut)

    def _wake(self, name: str) -> None:
        """Hand a free slot of ``name`` to the longest-waiting request that can use it."""
        queue = self._waiting.get(name)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(name)
                return
        self._waiting.pop(name, None)

    def _release(self, name: str) -> None:
        self.health.finished(name)
        self._wake(name)

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
