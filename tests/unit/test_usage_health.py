"""Health sync: balancer verdicts to status documents (categories only), news detection, and
other replicas' verdicts applied back to the balancer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenpool_proxy.token_health import HealthBook
from tokenpool_proxy.usage.health_status import HealthSync, merge_health, same

from tokenpool.contract.status_fields import Health, rfc3339


def test_unhealthy_verdict_is_news_once_and_carries_only_the_category() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    assert sync.news() == {}
    balancer.unhealthy("tok", "Unauthorized")
    news = sync.news()
    doc = news["tok"]
    assert (doc.state, doc.reason, doc.last_error, doc.consecutive_failures) == (
        "Unhealthy",
        "Unauthorized",
        "Unauthorized",
        1,
    )
    sync.written("tok", doc)
    assert sync.news() == {}


def test_cooldown_has_a_wall_clock_end_and_jitter_is_not_news() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    balancer.cooldown("tok", "RateLimited", seconds=30)
    doc = sync.news()["tok"]
    assert doc.state == "CoolingDown" and doc.reason == "RateLimited" and doc.cooldown_until
    end = datetime.fromisoformat(doc.cooldown_until.replace("Z", "+00:00"))
    assert abs((end - datetime.now(UTC)).total_seconds() - 30) < 3
    sync.written("tok", doc)
    assert sync.news() == {}


def test_other_replicas_verdicts_reach_the_balancer_and_admin_clear_forgets() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    now = datetime.now(UTC)
    sync.observe({"bad": Health(state="Unhealthy", reason="Suspended"), "ok": None}, now)
    assert balancer.get("bad").unhealthy_reason == "Suspended"
    assert sync.news() == {}  # adopted, not news to write back
    until = rfc3339(now + timedelta(seconds=60))
    sync.observe({"slow": Health(state="CoolingDown", reason="Blocked", cooldown_until=until)}, now)
    assert balancer.get("slow").cooling(balancer.clock())
    sync.observe({"bad": None}, now)  # an admin removed status.health
    assert balancer.get("bad").unhealthy_reason is None


def test_unwritten_local_news_survives_a_stale_read() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    balancer.unhealthy("tok", "OutOfCredits")
    sync.observe({"tok": None}, datetime.now(UTC))
    assert balancer.get("tok").unhealthy_reason == "OutOfCredits"
    assert sync.news()["tok"].state == "Unhealthy"


def test_merge_never_downgrades_unhealthy_and_same_ignores_jitter() -> None:
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
    a = Health(state="CoolingDown", reason="R", cooldown_until="2026-11-25T12:00:00Z")
    assert same(a, a.model_copy(update={"cooldown_until": "2026-11-25T12:00:01Z"}))
    assert not same(a, a.model_copy(update={"cooldown_until": "2026-11-25T12:00:09Z"}))


def test_a_write_never_shortens_a_cool_down_another_replica_started() -> None:
    now = datetime.now(UTC)
    blocked = Health(
        state="CoolingDown",
        reason="Blocked",
        cooldown_until=rfc3339(now + timedelta(seconds=600)),
        consecutive_failures=1,
    )
    # This replica succeeded on the token (it had not seen the block yet): its news is Healthy.
    merged = merge_health(blocked, Health(), now)
    assert (merged.state, merged.reason, merged.cooldown_until) == (
        "CoolingDown",
        "Blocked",
        blocked.cooldown_until,
    )
    assert same(merged, blocked)  # nothing to write
    shorter = Health(
        state="CoolingDown", reason="ServerError", cooldown_until=rfc3339(now + timedelta(seconds=5))
    )
    assert merge_health(blocked, shorter, now).cooldown_until == blocked.cooldown_until
    # Once the rest is over a success is written as such, and the backoff starts over.
    later = now + timedelta(seconds=601)
    assert merge_health(blocked, Health(), later).state == "Healthy"
    assert merge_health(blocked, Health(), later).consecutive_failures == 0


def test_backoff_count_is_shared_and_grows_across_replicas() -> None:
    a, b = HealthBook(cooldown_base_s=5), HealthBook(cooldown_base_s=5)
    sync_a, sync_b = HealthSync(a), HealthSync(b)
    now = datetime.now(UTC)
    assert a.cooldown("tok", "ServerError") == 5
    assert a.cooldown("tok", "ServerError") == 10
    doc = sync_a.news()["tok"]
    sync_a.written("tok", doc)
    sync_b.observe({"tok": doc}, now)
    assert b.get("tok").cooling(b.clock()) and b.get("tok").consecutive_failures == 2
    b.get("tok").cooldown_until = 0.0  # the rest is over on b: the next failure rests longer
    assert b.cooldown("tok", "ServerError") == 20
    # An expired cool-down still carries its count: the token is half-open, not fresh.
    c = HealthBook()
    expired = doc.model_copy(update={"cooldown_until": rfc3339(now - timedelta(seconds=1))})
    HealthSync(c).observe({"tok": expired}, now)
    assert c.get("tok").half_open(c.clock())


def test_a_success_elsewhere_resets_the_backoff_here() -> None:
    a, b = HealthBook(cooldown_base_s=5), HealthBook(cooldown_base_s=5)
    sync_a, sync_b = HealthSync(a), HealthSync(b)
    now = datetime.now(UTC)
    a.cooldown("tok", "ServerError")
    a.cooldown("tok", "ServerError")
    doc = sync_a.news()["tok"]
    sync_a.written("tok", doc)
    expired = doc.model_copy(update={"cooldown_until": rfc3339(now - timedelta(seconds=1))})
    sync_b.observe({"tok": expired}, now)
    assert b.get("tok").consecutive_failures == 2  # half-open here
    a.get("tok").cooldown_until = 0.0
    a.success("tok")  # a's trial succeeded and is written
    recovered = sync_a.news()["tok"]
    assert recovered.state == "Healthy" and recovered.consecutive_failures == 0
    sync_b.observe({"tok": recovered}, now)
    assert b.get("tok").consecutive_failures == 0
    assert b.cooldown("tok", "ServerError") == 5  # the next failure rests the base time again


def test_forgotten_cool_down_is_adopted_again_from_status() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    balancer.cooldown("tok", "Blocked", seconds=600)
    doc = sync.news()["tok"]
    sync.written("tok", doc)
    balancer.forget("tok")  # e.g. a replica restarted, or an old bug
    sync.observe({"tok": doc}, datetime.now(UTC))
    assert balancer.get("tok").cooling(balancer.clock())
    assert balancer.get("tok").cooldown_reason == "Blocked"


def test_a_check_clears_older_verdicts_and_they_are_not_written_back() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    balancer.unhealthy("tok", "Unauthorized")  # seen here, not flushed yet
    local = sync.news()["tok"]
    failed_at = datetime.fromisoformat(local.last_error_at.replace("Z", "+00:00"))
    cleared = Health(state="Healthy", cleared_at=rfc3339(failed_at + timedelta(seconds=1)))
    assert merge_health(cleared, local) == cleared  # the check came after this failure
    sync.observe({"tok": cleared}, datetime.now(UTC))
    assert balancer.get("tok").unhealthy_reason is None
    assert sync.news() == {}
    # A failure after the check is news again and is written.
    newer = cleared.model_copy(update={"cleared_at": rfc3339(failed_at - timedelta(seconds=5))})
    balancer.unhealthy("tok", "Unauthorized")
    assert merge_health(newer, sync.news()["tok"]).state == "Unhealthy"


def test_gone_tokens_are_forgotten_everywhere() -> None:
    balancer = HealthBook()
    sync = HealthSync(balancer)
    balancer.unhealthy("gone", "Unauthorized")
    balancer.unhealthy("kept", "Unauthorized")
    sync.observe({"kept": None}, datetime.now(UTC))
    assert balancer.names() == ["kept"]
    assert set(sync.news()) == {"kept"}
