"""Folding a replica's delta into an object's ``status.usage``: the "add" of read-add-write.

Pure and deterministic: the same (document, delta, now) gives the same document, so a flush that
lost a write race simply re-reads and re-applies. Each day's increments go to their own day, the
history keeps the newest :data:`~tokenpool.contract.status_fields.HISTORY_DAYS` days, and ``today`` /
``todayByUpstream`` describe the UTC day of ``now`` (zero when nothing happened yet that day).
"""

from __future__ import annotations

from datetime import datetime

from tokenpool.contract.status_fields import (
    HISTORY_DAYS,
    Counts,
    DayUsage,
    MinuteUsage,
    UpstreamUsage,
    Usage,
    parse_rfc3339,
    rfc3339,
    utc_date,
)

from .counters import Delta


def apply_delta(usage: Usage | None, delta: Delta, now: datetime, per_upstream: bool) -> Usage:
    """``usage`` (as read from the API server, None when never written) plus ``delta``."""
    base = usage or Usage()
    today = utc_date(now)

    days: dict[str, Counts] = {d.date: Counts.model_validate(d.model_dump()) for d in base.daily}
    for date, tally in delta.days.items():
        days[date] = days.get(date, Counts()).plus(tally.counts())
    kept = sorted(days)[-HISTORY_DAYS:]
    daily = [DayUsage(date=date, **days[date].model_dump()) for date in kept]
    today_counts = days.get(today, Counts())

    by_upstream: list[UpstreamUsage] | None = None
    if per_upstream:
        split: dict[str, Counts] = {}
        if base.today is not None and base.today.date == today:
            split = {u.name: Counts.model_validate(u.model_dump()) for u in base.today_by_upstream or []}
        for name, tally in delta.upstream_days.get(today, {}).items():
            split[name] = split.get(name, Counts()).plus(tally.counts())
        by_upstream = [UpstreamUsage(name=name, **split[name].model_dump()) for name in sorted(split)]

    minutes = dict(delta.minutes)
    if base.minute is not None:
        minutes[base.minute.start] = minutes.get(base.minute.start, 0) + base.minute.requests
    minute = None
    if minutes:
        newest = max(minutes)
        minute = MinuteUsage(start=newest, requests=minutes[newest])

    last_used = base.last_used_at
    if delta.last_used_at is not None and (
        last_used is None or delta.last_used_at > parse_rfc3339(last_used)
    ):
        last_used = rfc3339(delta.last_used_at)

    return Usage(
        total=base.total.plus(delta.total.counts()),
        today=DayUsage(date=today, **today_counts.model_dump()),
        minute=minute,
        last_used_at=last_used,
        daily=daily,
        today_by_upstream=by_upstream,
    )
