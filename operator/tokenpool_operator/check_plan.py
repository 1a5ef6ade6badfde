"""Pure decisions of the scheduled health checks: when the next check of a token is due, and
what a check's result writes (docs/operator.md, "Health checks").

* An ``Unhealthy`` token (not suspended) is checked ``base · 2^failures`` seconds after its last
  check or its last failure, capped at ``max`` and spread by ±20% jitter so that tokens that
  failed together are not all probed in the same second.
* A check asked for with the annotation ``tokenpool.io/check-now`` (any new value) is due
  at once, whatever the state.
* A check that passes clears the verdict: ``status.health`` becomes ``Healthy`` with
  ``clearedAt`` (proxy replicas then drop any older verdict of their own). ``failures`` is kept,
  so a token that fails again soon after (it passes the probe but not real traffic) is next
  checked later, not at the base interval again.
* A check that fails keeps the verdict and doubles the wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tokenpool.contract.compiled import ANNOTATION_CHECK_NOW
from tokenpool.contract.status_fields import Check, Health, parse_rfc3339, rfc3339


@dataclass(frozen=True)
class CheckPolicy:
    base_s: float = 60.0
    max_s: float = 3600.0
    jitter: float = 0.2


def _ts(value: str | None) -> datetime | None:
    try:
        return parse_rfc3339(value) if value else None
    except ValueError:
        return None


def delay(policy: CheckPolicy, failures: int, rand: float) -> float:
    """Seconds to wait after ``failures`` failed checks; ``rand`` in [0, 1) spreads it."""
    wait = min(policy.max_s, policy.base_s * 2 ** min(failures, 20))
    return wait * (1 - policy.jitter + 2 * policy.jitter * rand)


def requested(annotations: dict[str, str] | None, check: Check) -> str | None:
    """The pending check request (a value not handled yet), if any."""
    value = (annotations or {}).get(ANNOTATION_CHECK_NOW, "")
    return value if value and value != check.request else None


def next_due(
    health: Health | None, check: Check, suspended: bool, policy: CheckPolicy, now: datetime, rand: float
) -> datetime | None:
    """When the next scheduled check is due (None: no check scheduled)."""
    if suspended or health is None or health.state != "Unhealthy":
        return None
    planned = _ts(check.next_at)
    last, failed = _ts(check.last_at), _ts(health.last_error_at)
    if planned is not None and (last is None or planned > last):
        return planned  # already scheduled (e.g. before an operator restart): keep it
    since = max(t for t in (last, failed, now - timedelta(seconds=policy.base_s)) if t is not None)
    return since + timedelta(seconds=delay(policy, check.failures, rand))


def after_check(
    check: Check,
    result: str,
    now: datetime,
    policy: CheckPolicy,
    request: str | None,
    rand: float,
    unhealthy: bool,
) -> Check:
    """The ``status.check`` document after a check with ``result`` ("Healthy" or a category)."""
    passed = result == "Healthy"
    failures = check.failures if passed else check.failures + 1
    next_at = None
    if not passed and unhealthy:
        next_at = rfc3339(now + timedelta(seconds=delay(policy, failures, rand)))
    return Check(
        next_at=next_at,
        last_at=rfc3339(now),
        last_result=result,
        failures=failures,
        request=request if request is not None else check.request,
    )


def cleared(health: Health, now: datetime) -> Health:
    """``status.health`` after a passed check of an unhealthy token."""
    return Health(
        state="Healthy",
        reason="",
        last_error=health.last_error,
        last_error_at=health.last_error_at,
        consecutive_failures=0,
        cleared_at=rfc3339(now),
    )
