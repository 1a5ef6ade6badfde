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
