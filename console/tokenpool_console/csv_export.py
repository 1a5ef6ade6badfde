"""CSV exports of the pool's figures (users, upstream tokens, daily rows), streamed row by row.

Cells a person typed (names, descriptions) are defused against spreadsheet formula injection:
a cell starting with ``= + - @`` or a tab/carriage return gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from .mirror import NamespacePool
from .projections import TokenRow
from .tallies import Tally, last_days

COUNT_COLUMNS = ["requests", "successes", "errors", "promptTokens", "completionTokens", "credits"]


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _rows(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_safe(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def users(pool: NamespacePool, today: str, days: int) -> Iterator[str]:
    first = last_days(today, days)[0]
    header = ["name", "displayName", "email", "role", "state", "tokenQuota", "allocatedTokens", "lastUsedAt"]
    header += [f"today.{c}" for c in COUNT_COLUMNS] + [f"last{days}d.{c}" for c in COUNT_COLUMNS]
    header += [f"total.{c}" for c in COUNT_COLUMNS]
    rows = (
        [
            u.name,
            u.display_name,
            u.email,
            u.role,
            u.state,
            u.token_quota if u.token_quota is not None else "",
            u.allocated,
            u.usage.last_used_at,
            *u.usage.on(today),
            *u.usage.since(first),
            *u.usage.total,
        ]
        for u in sorted(pool.users.values(), key=lambda u: u.name)
    )
    return _rows(header, rows)


def tokens(pool: NamespacePool, today: str, days: int) -> Iterator[str]:
    first = last_days(today, days)[0]
    header = [
        "name",
        "provider",
        "state",
        "reason",
        "cooldownUntil",
        "plan",
        "creditsRemaining",
        "creditsTotal",
        "expiresAt",
        "allocations",
        "description",
        "lastUsedAt",
    ]
    header += [f"today.{c}" for c in COUNT_COLUMNS] + [f"last{days}d.{c}" for c in COUNT_COLUMNS]
    header += [f"total.{c}" for c in COUNT_COLUMNS]
    rows = (
        [
            t.name,
            t.provider,
            t.state,
            t.state_reason,
            t.health.cooldown_until or "",
            *_standing(t),
            t.allocations,
            t.description,
            t.usage.last_used_at,
            *t.usage.on(today),
            *t.usage.since(first),
            *t.usage.total,
        ]
        for t in sorted(pool.tokens.values(), key=lambda t: t.name)
    )
    return _rows(header, rows)


def _standing(t: TokenRow) -> list[Any]:
    s = t.standing
    if s is None:
        return ["", "", "", ""]
    return [s.plan, _blank(s.credits_remaining), _blank(s.credits_total), s.expires_at]


def _blank(value: int | None) -> Any:
    return "" if value is None else value


def daily(pool: NamespacePool, today: str, days: int) -> Iterator[str]:
    """One row per (date, scope, name) with figures: the pool, then every user and token."""
    dates = set(last_days(today, days))

    def lines() -> Iterator[list[Any]]:
        for date in sorted(dates):
            yield [date, "pool", "", *pool.daily.get(date, Tally())]
        for scope, objects in (("user", pool.users), ("token", pool.tokens)):
            for name in sorted(objects):
                for date, tally in objects[name].usage.daily:
                    if date in dates:
                        yield [date, scope, name, *tally]

    return _rows(["date", "scope", "name", *COUNT_COLUMNS], lines())
