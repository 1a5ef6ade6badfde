"""Sharing what the balancer learns about upstream tokens through ``UpstreamToken.status.health``.

The balancer's :class:`tokenpool_proxy.token_health.HealthBook` is the live truth of this replica. Once
per flush :class:`HealthSync` turns its ``snapshot()`` into :class:`~tokenpool.contract.status_fields.Health`
documents and reports the tokens whose verdict changed *here* since the last flush ("news");
the flusher writes those. In the other direction it applies what other replicas wrote (as the
replica's status watch shows it, on every flush) to the balancer, so a replica stops using a token another one
found broken within one flush interval, and a verdict cleared in status (the operator's check, an
admin) is cleared everywhere.

The interface the flusher relies on (docs/usage.md, "Health"): ``news()`` before writing;
``merge_health(current, news)`` for the document to write over the one read; ``written(name,
doc)`` once a document is in the API server (or already was); ``observe(remote, now)`` with the
``status.health`` of *every* UpstreamToken that exists (None: never written or cleared), after
each flush and at start, once the status watch listed them all. A token missing from ``remote``
is gone and forgotten.

Rules that make a verdict last as long as documented, whoever reads or writes it:
* ``Unhealthy`` is sticky: a replica never writes a token back to healthy by itself; the
  operator's check or an admin clears it. A replica's own verdict older than that clearing
  (``clearedAt``) is dropped, not written back.
* A cool-down is never shortened by a write: the later ``cooldownUntil`` wins, and the failure
  count (the next backoff) is the larger one. Cool-downs expire by time: a reader treats
  ``cooldownUntil`` in the past as over.

Only error *categories* leave the proxy (the balancer's CamelCase reasons: ``Unauthorized``,
``RateLimited``...), never the upstream's message: bodies can echo credentials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from tokenpool.contract.status_fields import Health, HealthState, parse_rfc3339, rfc3339

from .clock import Clock, SystemClock

# Cool-down ends computed from monotonic clocks jitter by milliseconds between snapshots.
_SAME_INSTANT_S = 2.0


class BalancerHealth(Protocol):
    """The part of the balancer's health book the sync uses."""

    def snapshot(self) -> dict[str, dict[str, Any]]: ...

    def adopt_unhealthy(self, name: str, reason: str, failures: int, last_error: str = "") -> None: ...

    def adopt_cooldown(
        self, name: str, reason: str, seconds: float, failures: int, last_error: str = ""
    ) -> None: ...

    def adopt_failures(self, name: str, failures: int) -> None: ...

    def adopt_success(self, name: str) -> None: ...

    def forget(self, name: str) -> None: ...

    def drop(self, name: str) -> None: ...


def _ts(value: str | None) -> datetime | None:
    try:
        return parse_rfc3339(value) if value else None
    except ValueError:
        return None


def doc_from_snapshot(entry: dict[str, Any], previous: Health | None) -> Health:
    """One token of the balancer's snapshot as a status document (categories only)."""
    state: HealthState = "Healthy"
    reason = ""
    until = None
    if entry.get("unhealthyReason"):
        state, reason = "Unhealthy", entry["unhealthyReason"]
    elif entry.get("cooldownUntil"):
        state, reason = "CoolingDown", entry.get("cooldownReason") or "CoolingDown"
        until = rfc3339(datetime.fromtimestamp(entry["cooldownUntil"], UTC))
    failed_at = entry.get("lastErrorAt")
    return Health(
        state=state,
        reason=reason,
        last_error=entry.get("lastError") or reason or (previous.last_error if previous else ""),
        last_error_at=(
            rfc3339(datetime.fromtimestamp(failed_at, UTC))
            if failed_at
            else (previous.last_error_at if previous else None)
        ),
        cooldown_until=until,
        consecutive_failures=int(entry.get("consecutiveFailures") or 0),
        cleared_at=previous.cleared_at if previous else None,
    )


def same(a: Health | None, b: Health | None) -> bool:
    """Equal verdicts, ignoring clock jitter in ``cooldownUntil``."""
    a, b = a or Health(), b or Health()
    if (a.state, a.reason, a.consecutive_failures) != (b.state, b.reason, b.consecutive_failures):
        return False
    if (a.cooldown_until is None) != (b.cooldown_until is None):
        return False
    if a.cooldown_until is None or b.cooldown_until is None:
        return True
    delta = parse_rfc3339(a.cooldown_until) - parse_rfc3339(b.cooldown_until)
    return abs(delta.total_seconds()) <= _SAME_INSTANT_S


def _predates_clearing(doc: Health, current: Health) -> bool:
    """Is ``doc``'s failure older than the check that cleared ``current``? (Both in whole
    seconds: a failure in the same second as the clearing is kept, the safe side.)"""
    cleared, failed = _ts(current.cleared_at), _ts(doc.last_error_at)
    return cleared is not None and failed is not None and failed < cleared


def _expired(doc: Health, known: Health | None) -> bool:
    """A cool-down that simply ran out is not news: nothing was learnt about the account (a
    success or a failure since would have changed the failure count)."""
    return (
        known is not None
        and known.state == "CoolingDown"
        and doc.state == "Healthy"
        and doc.consecutive_failures == known.consecutive_failures > 0
    )


def merge_health(current: Health | None, local: Health, now: datetime | None = None) -> Health:
    """What a replica writes over ``current`` (read just before) given its own news ``local``:
    never a downgrade of ``Unhealthy``, never a shorter cool-down, never a verdict older than
    the check that cleared the token. Equal to ``current`` when there is nothing to write."""
    if current is None:
        return local
    now = now or datetime.now(UTC)
    if current.state == "Unhealthy" and local.state != "Unhealthy":
        return local.model_copy(
            update={
                "state": "Unhealthy",
                "reason": current.reason,
                "cooldown_until": None,
                "consecutive_failures": max(current.consecutive_failures, local.consecutive_failures),
                "cleared_at": current.cleared_at,
            }
        )
    if local.state != "Healthy" and _predates_clearing(local, current):
        return current
    failures = max(current.consecutive_failures, local.consecutive_failures)
    if local.state == "Healthy" and local.consecutive_failures == 0:
        failures = 0  # a success since: the backoff starts over
    theirs = _ts(current.cooldown_until) if current.state == "CoolingDown" else None
    mine = _ts(local.cooldown_until) if local.state == "CoolingDown" else None
    if local.state != "Unhealthy" and theirs is not None and theirs > now and (mine is None or theirs > mine):
        return local.model_copy(
            update={
                "state": "CoolingDown",
                "reason": current.reason,
                "cooldown_until": current.cooldown_until,
                "consecutive_failures": max(current.consecutive_failures, local.consecutive_failures),
                "cleared_at": current.cleared_at,
            }
        )
    return local.model_copy(update={"consecutive_failures": failures, "cleared_at": current.cleared_at})


class HealthSync:
    def __init__(self, balancer: BalancerHealth, clock: Clock | None = None) -> None:
        self._balancer = balancer
        self._clock = clock or SystemClock()
        self._known: dict[str, Health] = {}  # this replica's verdicts as of the last flush

    def current(self) -> dict[str, Health]:
        snap = self._balancer.snapshot()
        for name in [n for n in self._known if n not in snap]:
            del self._known[name]  # dropped by the balancer: the token is gone
        return {name: doc_from_snapshot(entry, self._known.get(name)) for name, entry in snap.items()}

    def news(self) -> dict[str, Health]:
        """Tokens whose local verdict changed since the last flush, with the new document."""
        out = {}
        for name, doc in self.current().items():
            known = self._known.get(name)
            if same(doc, known) or _expired(doc, known):
                continue
            failed = doc.consecutive_failures > (known.consecutive_failures if known else 0)
            if (failed or doc.state != "Healthy") and not doc.last_error_at:
                doc = doc.model_copy(update={"last_error_at": rfc3339(self._clock.now())})
            out[name] = doc
        return out

    def written(self, name: str, doc: Health) -> None:
        """``doc`` is in the API server now."""
        self._known[name] = doc

    def observe(self, remote: dict[str, Health | None], now: datetime) -> None:
        """Apply the ``status.health`` of every token (None: never written or cleared) to the
        balancer, then remember the resulting verdicts as known (no news)."""
        local = self.current()
        for name in [n for n in local if n not in remote]:
            self._balancer.drop(name)  # the UpstreamToken is gone
            self._known.pop(name, None)
            del local[name]
        for name, doc in remote.items():
            self._apply(name, doc, local.get(name), now)
        after = self.current()
        for name, doc in after.items():
            # A verdict that changed during the flush's I/O stays news for the next flush.
            if same(local.get(name), self._known.get(name)):
                self._known[name] = doc

    def _apply(self, name: str, doc: Health | None, mine: Health | None, now: datetime) -> None:
        if doc is None or doc.state == "Healthy":
            if mine is None or mine.state == "Healthy":
                if (
                    doc is not None
                    and doc.consecutive_failures == 0
                    and mine is not None
                    and mine.consecutive_failures
                ):
                    self._balancer.adopt_success(name)  # a success elsewhere since our failures
                return
            known = self._known.get(name)
            cleared = known is not None and known.state != "Healthy"  # ours was there, now it is not
            if cleared or (doc is not None and _predates_clearing(mine, doc)):
                self._balancer.forget(name)
            return
        failures = doc.consecutive_failures
        if doc.state == "Unhealthy":
            if mine is None or mine.state != "Unhealthy":
                self._balancer.adopt_unhealthy(name, doc.reason, failures, doc.last_error)
            return
        until = _ts(doc.cooldown_until)
        remaining = (until - now).total_seconds() if until is not None else 0.0
        mine_until = _ts(mine.cooldown_until) if mine is not None else None
        later = mine_until is None or until is None or (until - mine_until).total_seconds() > _SAME_INSTANT_S
        if remaining > 0 and later and (mine is None or mine.state != "Unhealthy"):
            self._balancer.adopt_cooldown(name, doc.reason, remaining, failures, doc.last_error)
        elif failures:
            self._balancer.adopt_failures(name, failures)  # rest over, no success yet: half-open
