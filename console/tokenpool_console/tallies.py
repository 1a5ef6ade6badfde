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

from tokenpool.contract.status_fields import Counts, Usage, credit_sum


class Tally(NamedTuple):
    requests: int = 0
    successes: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    credits: float = 0  # what upstreams that price answers reported (docs/usage.md, "Credits")

    def plus(self, other: Tally) -> Tally:
        return Tally._make(a + b for a, b in zip(self, other, strict=True)).rounded()

    def minus(self, other: Tally) -> Tally:
        return Tally._make(a - b for a, b in zip(self, other, strict=True)).rounded()

    def rounded(self) -> Tally:
        """Credit sums rounded as the proxy writes them (no 0.30000000000000004 in a table)."""
        credits = credit_sum(self.credits, 0) or 0
        return self if credits == self.credits else self._replace(credits=credits)

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
            "credits": self.credits,
        }


ZERO = Tally()


def _tally(counts: Counts) -> Tally:
    return Tally(
        counts.requests,
        counts.successes,
        counts.errors,
        counts.prompt_tokens,
        counts.completion_tokens,
        counts.credits or 0,
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


# The wire names of the counts, from the contract's model (camelCase aliases).
_COUNT_KEYS = tuple(f.alias or name for name, f in Counts.model_fields.items())


def _fast_tally(doc: Any) -> Tally | None:
    """A counts document read straight off the wire; None when anything is not as the contract
    says (the caller then validates with the contract's model)."""
    if not isinstance(doc, dict):
        return None
    values = [doc.get(key, 0) for key in _COUNT_KEYS]
    *counts, credits = values  # credits: the one field that may be a fraction
    if any(type(v) is not int or v < 0 for v in counts) or type(credits) not in (int, float) or credits < 0:
        return None
    return Tally(*values)


def _fast(raw: dict[str, Any]) -> UsageView | None:
    """``status.usage`` without building pydantic objects: 10,000 users with 31 days is 310,000
    day documents at start-up. Anything unusual falls back to the contract's validation."""
    total = _fast_tally(raw.get("total") or {})
    today_doc = raw.get("today")
    today = _fast_tally(today_doc) if today_doc is not None else Tally()
    daily: list[tuple[str, Tally]] = []
    for doc in raw.get("daily") or ():
        tally = _fast_tally(doc)
        date = doc.get("date") if isinstance(doc, dict) else None
        if tally is None or not isinstance(date, str):
            return None
        daily.append((sys.intern(date), tally))
    by_upstream: list[tuple[str, Tally]] = []
    for doc in raw.get("todayByUpstream") or ():
        tally = _fast_tally(doc)
        name = doc.get("name") if isinstance(doc, dict) else None
        if tally is None or not isinstance(name, str):
            return None
        by_upstream.append((name, tally))
    last_used = raw.get("lastUsedAt") or ""
    today_date = today_doc.get("date") if isinstance(today_doc, dict) else ""
    if total is None or today is None or not isinstance(last_used, str) or not isinstance(today_date, str):
        return None
    return UsageView(total, sys.intern(today_date), today, last_used, tuple(daily), tuple(by_upstream))


def usage_view(status: dict[str, Any]) -> UsageView:
    """The compact view of ``status.usage`` (zero when missing or malformed)."""
    raw = status.get("usage")
    if not raw or not isinstance(raw, dict):
        return EMPTY
    fast = _fast(raw)
    if fast is not None:
        return fast
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
