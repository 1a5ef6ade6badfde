"""The schedule of the operator's health checks (pure decisions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenpool_operator.check_plan import CheckPolicy, after_check, cleared, delay, next_due, requested

from tokenpool.contract.compiled import ANNOTATION_CHECK_NOW
from tokenpool.contract.status_fields import Check, Health, rfc3339

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
POLICY = CheckPolicy(base_s=60, max_s=3600, jitter=0.2)
BAD = Health(state="Unhealthy", reason="Unauthorized", last_error_at=rfc3339(NOW))


def test_backoff_doubles_with_jitter_and_is_capped():
    assert [delay(POLICY, n, 0.5) for n in range(4)] == [60, 120, 240, 480]
    assert delay(POLICY, 30, 0.5) == 3600
    assert 48 <= delay(POLICY, 0, 0.0) <= delay(POLICY, 0, 0.999) <= 72


def test_only_unhealthy_unsuspended_tokens_are_scheduled():
    assert next_due(None, Check(), False, POLICY, NOW, 0.5) is None
    assert next_due(Health(state="CoolingDown"), Check(), False, POLICY, NOW, 0.5) is None
    assert next_due(BAD, Check(), True, POLICY, NOW, 0.5) is None
    assert next_due(BAD, Check(), False, POLICY, NOW, 0.5) == NOW + timedelta(seconds=60)


def test_a_planned_check_survives_a_restart_and_failures_push_it_out():
    planned = Check(next_at=rfc3339(NOW + timedelta(seconds=30)))
    assert next_due(BAD, planned, False, POLICY, NOW, 0.9) == NOW + timedelta(seconds=30)
    after = after_check(Check(), "Unauthorized", NOW, POLICY, None, 0.5, unhealthy=True)
    assert (after.failures, after.last_result, after.next_at) == (
        1,
        "Unauthorized",
        rfc3339(NOW + timedelta(seconds=120)),
    )
    again = after_check(after, "Unauthorized", NOW, POLICY, None, 0.5, unhealthy=True)
    assert again.next_at == rfc3339(NOW + timedelta(seconds=240))


def test_a_passed_check_clears_and_keeps_the_failure_count():
    passed = after_check(Check(failures=3), "Healthy", NOW, POLICY, "r1", 0.5, unhealthy=False)
    assert (passed.next_at, passed.failures, passed.request, passed.last_result) == (None, 3, "r1", "Healthy")
    doc = cleared(BAD, NOW)
    assert (doc.state, doc.cleared_at, doc.last_error) == ("Healthy", rfc3339(NOW), BAD.last_error)
    # Unhealthy again soon after: the next check waits longer than the base interval.
    relapse = BAD.model_copy(update={"last_error_at": rfc3339(NOW + timedelta(seconds=5))})
    assert next_due(relapse, passed, False, POLICY, NOW, 0.5) == NOW + timedelta(seconds=5 + 480)


def test_requests_are_handled_once_per_value():
    annotations = {ANNOTATION_CHECK_NOW: "2026-11-26T09:00:00Z"}
    assert requested(annotations, Check()) == "2026-11-26T09:00:00Z"
    assert requested(annotations, Check(request="2026-11-26T09:00:00Z")) is None
    assert requested({}, Check()) is None
