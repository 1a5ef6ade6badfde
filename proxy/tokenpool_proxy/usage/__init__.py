"""The usage seam: the one place the request path reports usage and asks about limits.

The request path calls ``check_limits(user)`` before choosing an upstream token (a None answer
admits the request), ``release(user)`` when an admitted request ends, and ``record(...)`` after
every upstream attempt (and for each plugin hand-out). Usage accounting with write-back to the
custom resources' status (:mod:`.service`, installed by :mod:`.wiring`) replaces
:class:`InMemoryUsage` with a richer implementation of :class:`UsageSink`; nothing else on the
request path changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

from tokenpool.contract.compiled import UserRoute

# "success"/"error": an upstream attempt; "handout": a token given to the plugin (DELETE /api/tokens).
Outcome = Literal["success", "error", "handout"]


@dataclass(frozen=True, slots=True)
class LimitDenied:
    """Why a user may not send a request now (answered 429 with ``retry_after``)."""

    message: str
    retry_after: float


@dataclass(slots=True)
class UpstreamCounter:
    count: int = 0
    last_used: float | None = None  # wall clock (time.time())


class UsageSink(Protocol):
    def check_limits(self, user: UserRoute) -> LimitDenied | None: ...

    def release(self, user: UserRoute) -> None: ...

    def record(
        self,
        user: str,
        upstream: str,
        outcome: Outcome,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_s: float = 0.0,
        credits: float = 0.0,
    ) -> None: ...

    def upstream_counter(self, upstream: str) -> UpstreamCounter: ...


class InMemoryUsage:
    """Per-upstream use counts for ``/api/tokens`` ordering and ``usage_count``; no limits.

    Counts live in this process only: the default of in-process tests; ``usage.wiring`` installs
    the service that persists them to status.
    """

    def __init__(self) -> None:
        self._upstreams: dict[str, UpstreamCounter] = {}

    def check_limits(self, user: UserRoute) -> LimitDenied | None:
        return None

    def release(self, user: UserRoute) -> None:
        return None

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
        counter = self._upstreams.setdefault(upstream, UpstreamCounter())
        counter.count += 1
        counter.last_used = time.time()

    def upstream_counter(self, upstream: str) -> UpstreamCounter:
        return self._upstreams.get(upstream) or UpstreamCounter()
