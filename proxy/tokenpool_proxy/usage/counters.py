"""In-memory usage counters on the request path: no I/O, just additions.

A PoolUser counts client requests (:meth:`UsageBook.request`, once per request whatever the
failovers: what limits and users care about); an UpstreamToken counts attempts on it
(:meth:`UsageBook.attempt`: what its health and load are about). Every increment lands in the
:class:`Delta` of the object, keyed by the UTC date and minute *of the increment*, so a delta
recorded at 23:59:59 and flushed after midnight still lands on the right day. The
:class:`UsageBook` keeps two things per object:

* ``pending``: deltas not yet handed to a flush;
* ``flushing``: deltas a flush is writing right now (still counted by limits until written).

What the API server holds (the other replicas' counts included) is the replica's
:class:`~.status_cache.StatusCache`. A flush takes ``pending`` into ``flushing``, and either
:meth:`UsageBook.commit` s it (the write succeeded: the document holding the delta replaces the
cached one in the same step, the delta is gone) or :meth:`UsageBook.give_back` s it (the write
failed: the delta returns to ``pending``). Nothing is subtracted before the API server confirmed
the write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.contract.status_fields import Counts, credit_sum, utc_date, utc_minute

ObjectKey = tuple[str, str]  # (kind, name)


def user_key(user: str) -> ObjectKey:
    return (KIND_USER, user)


def upstream_key(upstream: str) -> ObjectKey:
    return (KIND_UPSTREAM, upstream)


@dataclass
class Tally:
    """Mutable counts: the request path adds to these without building pydantic objects."""

    requests: int = 0
    successes: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    credits: float = 0.0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.errors += other.errors
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.credits += other.credits

    def counts(self) -> Counts:
        return Counts(
            requests=self.requests,
            successes=self.successes,
            errors=self.errors,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            credits=credit_sum(self.credits, 0.0) if self.credits else None,
        )


@dataclass
class Delta:
    """Unflushed increments of one object."""

    total: Tally = field(default_factory=Tally)
    days: dict[str, Tally] = field(default_factory=dict)
    # date -> upstream name -> counts; only kept for PoolUsers (today's per-upstream split).
    upstream_days: dict[str, dict[str, Tally]] = field(default_factory=dict)
    minutes: dict[str, int] = field(default_factory=dict)
    last_used_at: datetime | None = None

    def add(self, one: Tally, at: datetime, upstream: str | None = None, split: Tally | None = None) -> None:
        """Add ``one`` to the totals, and ``split`` to today's line of ``upstream``."""
        self.total.add(one)
        date = utc_date(at)
        day = self.days.get(date)  # get, then create: no throwaway Tally per call (hot path)
        if day is None:
            day = self.days[date] = Tally()
        day.add(one)
        if upstream is not None and split is not None:
            ups = self.upstream_days.get(date)
            if ups is None:
                ups = self.upstream_days[date] = {}
            line = ups.get(upstream)
            if line is None:
                line = ups[upstream] = Tally()
            line.add(split)
        minute = utc_minute(at)
        self.minutes[minute] = self.minutes.get(minute, 0) + one.requests
        if self.last_used_at is None or at > self.last_used_at:
            self.last_used_at = at

    def absorb(self, other: Delta) -> None:
        """Fold another delta of the same object into this one (a failed write coming back)."""
        self.total.add(other.total)
        for date, tally in other.days.items():
            self.days.setdefault(date, Tally()).add(tally)
        for date, ups in other.upstream_days.items():
            mine = self.upstream_days.setdefault(date, {})
            for name, tally in ups.items():
                mine.setdefault(name, Tally()).add(tally)
        for minute, n in other.minutes.items():
            self.minutes[minute] = self.minutes.get(minute, 0) + n
        if other.last_used_at is not None and (
            self.last_used_at is None or other.last_used_at > self.last_used_at
        ):
            self.last_used_at = other.last_used_at

    def requests_on(self, date: str) -> int:
        tally = self.days.get(date)
        return tally.requests if tally else 0


class UsageBook:
    """Per-object counters of this replica; see the module docstring for the life of a delta."""

    def __init__(self) -> None:
        self.pending: dict[ObjectKey, Delta] = {}
        self.flushing: dict[ObjectKey, Delta] = {}

    def _delta(self, key: ObjectKey) -> Delta:
        delta = self.pending.get(key)
        if delta is None:
            delta = self.pending[key] = Delta()
        return delta

    def attempt(
        self,
        user: str,
        upstream: str,
        success: bool,
        prompt_tokens: int,
        completion_tokens: int,
        at: datetime,
        credits: float = 0.0,
    ) -> None:
        """One upstream attempt (or plugin hand-out) of ``user`` on ``upstream``: a request of the
        UpstreamToken; for the PoolUser only its tokens, credits and its line in today's split."""
        one = Tally(
            requests=1,
            successes=int(success),
            errors=int(not success),
            prompt_tokens=max(0, prompt_tokens),
            completion_tokens=max(0, completion_tokens),
            credits=max(0.0, credits),
        )
        self._delta(upstream_key(upstream)).add(one, at)
        tokens = Tally(
            prompt_tokens=one.prompt_tokens, completion_tokens=one.completion_tokens, credits=one.credits
        )
        self._delta(user_key(user)).add(tokens, at, upstream, split=one)

    def request(self, user: str, success: bool, at: datetime) -> None:
        """One client request of ``user`` ended (whatever number of attempts it took)."""
        self._delta(user_key(user)).add(
            Tally(requests=1, successes=int(success), errors=int(not success)), at
        )

    def take(self) -> dict[ObjectKey, Delta]:
        """Hand every pending delta to a flush (they stay visible to limits as ``flushing``)."""
        taken, self.pending = self.pending, {}
        for key, delta in taken.items():
            self.flushing.setdefault(key, Delta()).absorb(delta)
        return taken

    def commit(self, key: ObjectKey) -> None:
        """The delta of ``key`` is in the API server now (and the written document in the cache)."""
        self.flushing.pop(key, None)

    def give_back(self, key: ObjectKey) -> None:
        """The write of ``key`` failed: its delta counts as pending again."""
        delta = self.flushing.pop(key, None)
        if delta is not None:
            self.pending.setdefault(key, Delta()).absorb(delta)

    def drop(self, key: ObjectKey) -> None:
        """The object is gone (deleted): nothing left to write its counts into."""
        self.flushing.pop(key, None)

    def unflushed(self, key: ObjectKey) -> Delta:
        """Pending plus flushing: everything this replica counted that the API server does not
        hold yet."""
        out = Delta()
        for part in (self.pending.get(key), self.flushing.get(key)):
            if part is not None:
                out.absorb(part)
        return out

    def unflushed_requests(self, key: ObjectKey, date: str, minute: str) -> tuple[int, int]:
        """Requests of ``key`` on ``date`` and in ``minute`` not in the API server yet: what limits
        add to the cached counts (without building a merged :class:`Delta` per request)."""
        on_date = in_minute = 0
        for part in (self.pending.get(key), self.flushing.get(key)):
            if part is not None:
                on_date += part.requests_on(date)
                in_minute += part.minutes.get(minute, 0)
        return on_date, in_minute
