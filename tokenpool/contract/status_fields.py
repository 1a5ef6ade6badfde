"""The status documents the proxy writes: ``status.usage`` and ``status.health``.

The proxy writes these two fields, and only these, through the ``/status`` subresource of
PoolUser and UpstreamToken; the operator owns ``conditions``, ``observedGeneration`` and the rest.
The operator reads ``status.health`` to set the ``Healthy`` condition of an UpstreamToken, and the
CRDs must declare these shapes (or mark the two fields ``x-kubernetes-preserve-unknown-fields``)
or the API server prunes them silently. Defined once here so the operator, the proxy, the CRD
schema and the tests agree.

Shapes (camelCase on the wire)::

    usage:
      total:  {requests, successes, errors, promptTokens, completionTokens, credits}
      today:  {date: "YYYY-MM-DD", requests, successes, errors, promptTokens, completionTokens, credits}
      minute: {start: "YYYY-MM-DDTHH:MMZ", requests}        # fixed window for requestsPerMinute
      lastUsedAt: RFC 3339 UTC
      daily: [{date, requests, ...}]                        # oldest first, at most 31 days
      todayByUpstream: [{name, requests, ...}]              # PoolUser only: today's split
    health:
      state: Healthy | CoolingDown | Unhealthy
      reason: CamelCase category (Unauthorized, Suspended, OutOfCredits, RateLimited, Blocked,
              UpstreamError, ...: the balancer's failure reasons)
      lastError: the category of the latest failure, never an upstream body (it may echo secrets)
      lastErrorAt, cooldownUntil: RFC 3339 UTC
      consecutiveFailures: int
      clearedAt: RFC 3339 UTC, set by the operator when a check cleared a verdict: a replica
                 drops a verdict of its own that is older (it was about the account before the
                 check)
    check:                                                  # UpstreamToken only; the operator's
      nextAt, lastAt: RFC 3339 UTC                          # scheduled checks of Unhealthy tokens
      lastResult: Healthy | a category (Unauthorized, ...)
      failures: int                                         # failed checks in a row (the backoff)
      request: the value of the tokenpool.io/check-now annotation last handled

``credits`` are what upstreams that price their answers reported (an OpenAI-compatible upstream's
``usage.cost``, e.g. OpenRouter's): a number in the upstream's own unit, summed per object and day;
absent where no upstream reported any (docs/usage.md, "Credits").

``today`` and ``todayByUpstream`` belong to ``today.date``: a reader on a later UTC day treats
them as zero (nothing was written since midnight).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

HISTORY_DAYS = 31

HealthState = Literal["Healthy", "CoolingDown", "Unhealthy"]


def _readable_time(value: object) -> str | None:
    """An RFC 3339 time as the proxy writes it, or None for anything unreadable.

    These documents are written by every replica and by admins (``kubectl patch``); one bad
    timestamp must not make the whole document unreadable, nor block rewriting it (the next write
    replaces it with a good one).
    """
    if not isinstance(value, str):
        return None
    try:
        return rfc3339(parse_rfc3339(value))
    except ValueError:
        return None


Timestamp = Annotated[str | None, BeforeValidator(_readable_time)]


class _Status(BaseModel):
    # camelCase on the wire through the generator, not per-field aliases: keeps snake_case
    # constructor arguments type-checkable.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)


class Counts(_Status):
    requests: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    credits: float | None = Field(default=None, ge=0)  # absent: no upstream reported any

    def plus(self, other: Counts) -> Counts:
        return Counts(
            requests=self.requests + other.requests,
            successes=self.successes + other.successes,
            errors=self.errors + other.errors,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            credits=credit_sum(self.credits, other.credits),
        )


CREDIT_DIGITS = 9


def credit_sum(a: float | None, b: float | None) -> float | None:
    """``a + b`` rounded to :data:`CREDIT_DIGITS` decimals (None while neither is known): sums of
    binary fractions drift (0.1 + 0.2), and a document summed by many replicas over months must
    read the same figure whichever order the writes came in."""
    if a is None and b is None:
        return None
    return round((a or 0.0) + (b or 0.0), CREDIT_DIGITS)


class DayUsage(Counts):
    date: str  # YYYY-MM-DD, UTC


class UpstreamUsage(Counts):
    name: str


class MinuteUsage(_Status):
    start: str  # YYYY-MM-DDTHH:MMZ, UTC
    requests: int = Field(default=0, ge=0)


class Usage(_Status):
    total: Counts = Counts()
    today: DayUsage | None = None
    minute: MinuteUsage | None = None
    last_used_at: Timestamp = None
    daily: list[DayUsage] = []
    today_by_upstream: list[UpstreamUsage] | None = None

    def day(self, date: str) -> Counts:
        """Counts of one UTC day (zero when the history does not hold it)."""
        for d in self.daily:
            if d.date == date:
                return Counts.model_validate(d.model_dump())
        return Counts()


class Health(_Status):
    state: HealthState = "Healthy"
    reason: str = ""
    last_error: str = ""
    last_error_at: Timestamp = None
    cooldown_until: Timestamp = None
    consecutive_failures: int = Field(default=0, ge=0)
    cleared_at: Timestamp = None


class Check(_Status):
    """The operator's scheduled (or requested) re-checks of an unhealthy UpstreamToken."""

    next_at: str | None = None
    last_at: str | None = None
    last_result: str = ""
    failures: int = Field(default=0, ge=0)
    request: str = ""


_Labels = tuple[tuple[int, int, int, int, int], str, str]  # (minute fields, date, minute)
_latest: _Labels = ((0, 0, 0, 0, 0), "", "")


def _labels(ts: datetime) -> _Labels:
    """The date and minute strings of ``ts`` in UTC, from a one-entry cache.

    Every usage increment of the proxy is labelled with its day and minute (several per request)
    and ``strftime`` costs microseconds each; consecutive calls nearly always fall in the same
    minute. The entry is one tuple, replaced whole, so threads never see a torn one.
    """
    global _latest
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    key = (ts.year, ts.month, ts.day, ts.hour, ts.minute)
    latest = _latest
    if latest[0] != key:
        date = f"{key[0]:04d}-{key[1]:02d}-{key[2]:02d}"
        latest = _latest = (key, date, f"{date}T{key[3]:02d}:{key[4]:02d}Z")
    return latest


def utc_date(ts: datetime) -> str:
    """``YYYY-MM-DD`` of ``ts`` in UTC."""
    return _labels(ts)[1]


def utc_minute(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MMZ`` of ``ts`` in UTC."""
    return _labels(ts)[2]


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def to_wire(doc: BaseModel) -> dict[str, object]:
    """The JSON a status patch carries: camelCase, no nulls (a null would delete the key)."""
    return doc.model_dump(by_alias=True, mode="json", exclude_none=True)
