"""Health book: failures to status documents, stickiness, read-back and the merge rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenpool_proxy.usage.health import HealthBook, merge_health

from tokenpool.status import Health

T = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_transient_failure_cools_down_then_expires_by_time() -> None:
    book = HealthBook()
    doc = book.report_failure("tok", "RateLimited", T, cooldown_until=T + timedelta(seconds=30))
    assert (doc.state, doc.reason, doc.cooldown_until, doc.consecutive_failures) == (
        "CoolingDown",
        "RateLimited",
        "2026-11-25T12:00:30Z",
        1,
    )
    assert not book.available("tok", T + timedelta(seconds=29))
    assert book.available("tok", T + timedelta(seconds=30))
    assert book.take() == {"tok": doc} and book.take() == {}


def test_unauthorized_is_unhealthy_and_sticky() -> None:
    book = HealthBook()
    book.report_failure("tok", "Unauthorized", T)
    book.report_success("tok")
    doc = book.report_failure("tok", "Timeout", T, cooldown_until=T + timedelta(seconds=5))
    assert (doc.state, doc.reason, doc.last_error, doc.consecutive_failures) == (
        "Unhealthy",
        "Unauthorized",
        "Timeout",
        2,
    )
    assert not book.available("tok", T + timedelta(days=1))


def test_success_resets_failures_and_marks_dirty_only_on_change() -> None:
    book = HealthBook()
    book.report_success("tok")
    assert book.take() == {}
    book.report_failure("tok", "ServerError", T, cooldown_until=T + timedelta(seconds=1))
    book.take()
    book.report_success("tok")
    taken = book.take()
    assert taken["tok"].state == "Healthy" and taken["tok"].consecutive_failures == 0
    assert taken["tok"].last_error == "ServerError"


def test_read_back_adopts_other_replicas_and_admin_clears() -> None:
    book = HealthBook()
    book.observe("tok", Health(state="Unhealthy", reason="Suspended"))
    assert not book.available("tok", T)
    book.observe("tok", None)  # an admin removed status.health
    assert book.available("tok", T)
    book.report_failure("tok", "Unauthorized", T)
    book.observe("tok", None)  # unwritten news wins over the stale read
    assert not book.available("tok", T)


def test_merge_never_downgrades_unhealthy() -> None:
    current = Health(state="Unhealthy", reason="OutOfCredits", consecutive_failures=4)
    local = Health(state="CoolingDown", reason="Timeout", last_error="Timeout", consecutive_failures=1)
    merged = merge_health(current, local)
    assert (merged.state, merged.reason, merged.last_error, merged.consecutive_failures) == (
        "Unhealthy",
        "OutOfCredits",
        "Timeout",
        4,
    )
    assert merge_health(Health(), local) == local
