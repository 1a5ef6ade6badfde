"""Usage figures in a compact form: what the console keeps per object, and adds up.

``status.usage`` (shape: :mod:`tokenpool.contract.status_fields`) is validated with the
contract's model, then kept as tuples: at 10,000 users with a month of history, pydantic objects
per day would cost hundreds of megabytes, tuples with interned dates a few tens.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from tokenpool.contract.status_fields import Counts, Usage


class Tally(NamedTuple):
    requests: int = 0
    successes: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def plus(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(self, other, strict=True)))

    def minus(self, other: Tally) -> Tally:
        return Tally(*(a - b for a, b in zip(self, other, strict=True)))

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def success_rate(self) -> float | None:
        """Successes per request (None without requests)."""
        return self.successes / self.requests if self.requests else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "successes": self.successes,
            "errors": self.errors,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
        }


ZERO = Tally()


def _tally(counts: Counts) -> Tally:
    return Tally(
        counts.requests, counts.successes, counts.errors, counts.prompt_tokens, counts.completion_tokens
    )


class UsageView(NamedTuple):
    total: Tally = ZERO
    today_date: str = ""
    today: Tally = ZERO
    last_used_at: str = ""
    daily: tuple[tuple[str, Tally], ...] = ()  # oldest first
    by_upstream: tuple[tuple[str, Tally], ...] = ()  # today's split (PoolUser only)

    def on(self, day: str) -> Tally:
        """Counts of one UTC day; ``today`` counts only while it is that day's."""
        for d, tally in self.daily:
            if d == day:
                return tally
        return self.today if self.today_date == day else ZERO

    def since(self, first_day: str) -> Tally:
        total = ZERO
        for d, tally in self.daily:
            if d >= first_day:
                total = total.plus(tally)
        return total

    def upstream_today(self, today: str) -> tuple[tuple[str, Tally], ...]:
        return self.by_upstream if self.today_date == today else ()


EMPTY = UsageView()


def usage_view(status: dict[str, Any]) -> UsageView:
    """The compact view of ``status.usage`` (zero when missing or malformed)."""
    raw = status.get("usage")
    if not raw:
        return EMPTY
    try:
        usage = Usage.model_validate(raw)
    except ValidationError:
        return EMPTY
    return UsageView(
        total=_tally(usage.total),
        today_date=sys.intern(usage.today.date) if usage.today else "",
        today=_tally(usage.today) if usage.today else ZERO,
        last_used_at=usage.last_used_at or "",
        daily=tuple((sys.intern(d.date), _tally(d)) for d in usage.daily),
        by_upstream=tuple((u.name, _tally(u)) for u in usage.today_by_upstream or ()),
    )


def utc_today(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).date().isoformat()


def last_days(today: str, days: int) -> list[str]:
    """The ``days`` UTC dates ending with ``today``, oldest first."""
    end = date.fromisoformat(today)
    return [(end - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
