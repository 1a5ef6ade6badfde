"""Statistics of a namespace's pool, computed only from the daily figures the proxy writes into
status (``status.usage.daily``, ``today``, ``todayByUpstream``), never from per-request rows.

The pool's series comes from the mirror's running sums; rankings read each object's own history.
Results are cached per namespace until the pool changes (or for a few seconds while it keeps
changing), so a busy pool of 10,000 users costs one computation per few seconds, not per page.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass
from typing import Any

from .mirror import NamespacePool
from .projections import TokenRow, UserRow
from .queries import TOKEN_STATES
from .tallies import ZERO, Tally, last_days

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Ranked:
    name: str
    display: str
    tally: Tally


@dataclass(frozen=True)
class PoolStats:
    days: list[tuple[str, Tally]]  # oldest first, zero-filled
    period: Tally
    today: Tally
    top_users: list[Ranked]
    top_tokens: list[Ranked]
    health: dict[str, int]
    users: dict[str, int]  # active, suspended, pending, admins, total
    quota: dict[str, Any]
    allocations: dict[str, int]


def series(
    daily: dict[str, Tally] | tuple[tuple[str, Tally], ...], today: str, days: int
) -> list[tuple[str, Tally]]:
    by_day = dict(daily)
    return [(d, by_day.get(d, ZERO)) for d in last_days(today, days)]


def _window_requests(rows: Any, first_day: str) -> list[tuple[int, str, Any]]:
    out = []
    for row in rows:
        requests = 0
        for day, tally in row.usage.daily:
            if day >= first_day:
                requests += tally.requests
        if requests:
            out.append((requests, row.name, row))
    return out


def _ranked(rows: Any, first_day: str, n: int, display: Any) -> list[Ranked]:
    best = heapq.nlargest(n, _window_requests(rows, first_day), key=lambda t: (t[0], t[1]))
    return [Ranked(row.name, display(row), row.usage.since(first_day)) for _, _, row in best]


def health_counts(tokens: Any) -> dict[str, int]:
    counts = dict.fromkeys(TOKEN_STATES, 0)
    for token in tokens:
        counts[token.state] = counts.get(token.state, 0) + 1
    return counts


def quota_use(users: Any, default_quota: int, max_quota: int, today: str) -> dict[str, Any]:
    """Allocated tokens against quotas, and how close users are to their daily request limit."""
    granted = quota = full = unused = 0
    near_limit: list[tuple[float, str, int, int]] = []
    for user in users:
        q = min(user.token_quota if user.token_quota is not None else default_quota, max_quota)
        granted, quota = granted + user.allocated, quota + q
        full += user.allocated >= q > 0
        unused += user.allocated == 0
        if user.requests_per_day:
            used = user.usage.on(today).requests
            if used >= 0.8 * user.requests_per_day:
                near_limit.append((used / user.requests_per_day, user.name, used, user.requests_per_day))
    near_limit.sort(reverse=True)
    return {
        "granted": granted,
        "quota": quota,
        "usersAtQuota": full,
        "usersWithoutTokens": unused,
        "nearDailyLimit": [
            {"name": name, "requestsToday": used, "requestsPerDay": limit}
            for _, name, used, limit in near_limit[:20]
        ],
    }


def compute(
    pool: NamespacePool, today: str, days: int, default_quota: int, max_quota: int, top: int = 10
) -> PoolStats:
    window = series(pool.daily, today, days)
    first = window[0][0]
    period = ZERO
    for _, tally in window:
        period = period.plus(tally)
    users = pool.users.values()
    counts = {"total": len(pool.users), "active": 0, "suspended": 0, "pending": 0, "admins": 0}
    for user in users:
        counts[user.state] += 1
        counts["admins"] += user.role == "Admin"
    allocs = pool.allocations.values()
    return PoolStats(
        days=window,
        period=period,
        today=window[-1][1],
        top_users=_ranked(users, first, top, lambda u: u.display_name),
        top_tokens=_ranked(pool.tokens.values(), first, top, lambda t: t.description),
        health=health_counts(pool.tokens.values()),
        users=counts,
        quota=quota_use(users, default_quota, max_quota, today),
        allocations={"total": len(pool.allocations), "notReady": sum(not a.ready for a in allocs)},
    )


class StatsCache:
    """One computation per (namespace, today, days) while the pool is unchanged, at most one per
    :data:`CACHE_SECONDS` while it keeps changing."""

    def __init__(self, default_quota: int, max_quota: int) -> None:
        self.default_quota, self.max_quota = default_quota, max_quota
        self._cache: dict[tuple[str, str, int], tuple[int, float, PoolStats]] = {}

    def get(self, pool: NamespacePool, today: str, days: int) -> PoolStats:
        key = (pool.name, today, days)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and (hit[0] == pool.version or now - hit[1] < CACHE_SECONDS):
            return hit[2]
        stats = compute(pool, today, days, self.default_quota, self.max_quota)
        self._cache[key] = (pool.version, now, stats)
        return stats


def user_summary(user: UserRow, today: str, days: int) -> dict[str, Any]:
    return _summary(user.usage.daily, user.usage, today, days)


def token_summary(token: TokenRow, today: str, days: int) -> dict[str, Any]:
    return _summary(token.usage.daily, token.usage, today, days)


def _summary(daily: tuple[tuple[str, Tally], ...], usage: Any, today: str, days: int) -> dict[str, Any]:
    window = series(daily, today, days)
    period = ZERO
    for _, tally in window:
        period = period.plus(tally)
    return {"days": window, "period": period, "today": usage.on(today), "total": usage.total}
