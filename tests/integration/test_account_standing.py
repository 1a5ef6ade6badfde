"""Account standing across the whole loop: the operator reads each Augment account's plan, expiry
and credits from the (fake) upstream into status and columns; a spent account is retired within
one reading, a selector allocation gets a replacement and the proxy stops handing it out; an
endpoint switched off leaves the account usable; the near-expiry Event fires once."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.plugin_client import PluginClient
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
# Readings every 2 s in these tests (6 h by default); the first at once.
FAST = {"standing_interval_seconds": 2, "standing_first_delay_seconds": 0, "renewal_margin_days": 3}
WAIT = 60  # seconds: generous for a loaded machine; the figures printed are what it took


def _wait(predicate: Callable[[], Any], what: str = "") -> Any:
    return wait_for(predicate, timeout=WAIT, what=what)


def _reasons(pool: Pool, name: str) -> set[tuple[str, str]]:
    """(type, reason) of the Events about ``name``."""
    return {(t, r) for t, r, _ in pool.events(name)}


def _account(pool: Pool, name: str) -> dict[str, Any]:
    return dict((pool.get(c.KIND_UPSTREAM, name).get("status") or {}).get("account") or {})


def _augment_token(
    pool: Pool, fake_upstream: Any, name: str, credential: str, labels: dict[str, str] | None = None
) -> None:
    pool.credential(f"{name}-cred", credential)
    pool.token(name, endpoint=fake_upstream.tenant(name), labels=labels)


def _knobs(fake_upstream: Any, credential: str, **knobs: Any) -> None:
    fake_upstream.http.put(f"_control/accounts/{credential}", json=knobs).raise_for_status()


def test_standing_in_status_columns_and_metrics(
    pool: Pool, namespace: str, fake_upstream: Any, operator_process: Callable[..., Any], kubectl: Any
) -> None:
    credential = "acct-a-" + "0" * 40
    _knobs(fake_upstream, credential, plan="Pro", end_date="2027-03-01T00:00:00Z", credits_remaining=740)
    operator = operator_process(namespace, **FAST)
    started = time.monotonic()
    _augment_token(pool, fake_upstream, "acct-a", credential)
    account = _wait(
        lambda: _account(pool, "acct-a").get("creditsRemaining") == 740 and _account(pool, "acct-a")
    )
    print(f"standing in status {time.monotonic() - started:.1f}s after the token was created")
    assert account["plan"] == "Pro" and account["expiresAt"] == "2027-03-01T00:00:00Z"
    assert account["creditsTotal"] == 1000 and account["defaultModel"] == "fake-default"
    assert account.get("unknown", []) == []
    _wait(lambda: pool.condition(c.KIND_UPSTREAM, "acct-a", "AccountActive"), what="conditions")
    assert pool.condition(c.KIND_UPSTREAM, "acct-a", "AccountActive")["status"] == "True"
    assert pool.condition(c.KIND_UPSTREAM, "acct-a", "RenewalDue")["reason"] == "NotDue"
    table = kubectl("get", "ut", "acct-a", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert "CREDITS" in header and "EXPIRES" in header
    assert "740" in row.split() and "2027-03-01T00:00:00Z" in row.split()
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert (
        f'tokenpool_operator_account_credits_remaining{{namespace="{namespace}",token="acct-a"}} 740.0'
        in metrics
    )
    assert 'tokenpool_operator_account_days_to_expiry{namespace="' in metrics
    assert credential not in metrics


def test_a_spent_account_is_retired_and_replaced(
    pool: Pool,
    namespace: str,
    fake_upstream: Any,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., Any],
) -> None:
    creds = {name: f"{name}-" + "1" * 40 for name in ("spend-1", "spend-2")}
    for name, credential in creds.items():
        _knobs(fake_upstream, credential, credits_total=10, credits_remaining=10)
        _augment_token(pool, fake_upstream, name, credential, {"pool": "spend"})
    operator_process(namespace, **FAST)
    for name in creds:
        _wait(lambda name=name: _account(pool, name).get("creditsRemaining") == 10, what=f"{name} read")
    pool.user("alice")
    pool.allocation("alice-spend", "alice", selector={"matchLabels": {"pool": "spend"}}, count=1)
    [first] = _wait(lambda: pool.granted("alice-spend"), what="a token granted")
    [other] = [n for n in creds if n != first]
    proxy = proxy_process(namespace)
    plugin = PluginClient(proxy.url, _wait(lambda: pool.personal_token("alice")))
    _wait(
        lambda: [t["token"] for t in plugin.list_tokens()] == [creds[first]], what="proxy hands out the grant"
    )

    _knobs(fake_upstream, creds[first], credits_remaining=0, depleted=True)  # spent
    spent_at = time.monotonic()
    _wait(lambda: pool.reason(c.KIND_UPSTREAM, first, "AccountActive") == "Depleted")
    _wait(lambda: pool.granted("alice-spend") == [other], what="selector picks a replacement")
    _wait(lambda: [t["token"] for t in plugin.list_tokens()] == [creds[other]], what="proxy")
    print(f"spent account retired and replaced at the proxy in {time.monotonic() - spent_at:.1f}s")
    assert pool.condition(c.KIND_UPSTREAM, first, "Healthy")["status"] == "True"  # its own verdict
    _wait(lambda: ("Warning", "Depleted") in _reasons(pool, first), what="Depleted Event")
    # Retired accounts are re-read daily, not at the usable accounts' pace.
    next_at = datetime.fromisoformat(_account(pool, first)["nextCheckAt"].replace("Z", "+00:00"))
    assert next_at - datetime.now(UTC) > timedelta(hours=23)

    # Topped up upstream; "check now" reads the standing at once instead of in a day.
    _knobs(fake_upstream, creds[first], credits_remaining=10, depleted=False)
    pool.patch(c.KIND_UPSTREAM, first, {"metadata": {"annotations": {c.ANNOTATION_CHECK_NOW: "1"}}})
    _wait(lambda: pool.reason(c.KIND_UPSTREAM, first, "AccountActive") == "Active")
    # The Event is posted after the condition is written (Kopf posts Events on its own): wait.
    _wait(lambda: ("Normal", "Active") in _reasons(pool, first), what="Active Event")
    _wait(lambda: pool.upstream_route(first).healthy, what="the route usable again")


def test_a_switched_off_endpoint_is_unknown_not_bad(
    pool: Pool, namespace: str, fake_upstream: Any, operator_process: Callable[..., Any]
) -> None:
    credential = "acct-off-" + "2" * 40
    _knobs(fake_upstream, credential, credits_remaining=500)
    operator_process(namespace, **FAST)
    _augment_token(pool, fake_upstream, "acct-off", credential)
    _wait(lambda: _account(pool, "acct-off").get("creditsRemaining") == 500)
    _knobs(fake_upstream, credential, missing=["get-credit-info", "subscription-info"])
    account = _wait(lambda: _account(pool, "acct-off").get("unknown") and _account(pool, "acct-off"))
    assert set(account["unknown"]) == {"credits", "subscription"}
    assert account["creditsRemaining"] == 500  # the last known value stays, marked unknown
    active = _wait(
        lambda: (
            "not answered"
            in (pool.condition(c.KIND_UPSTREAM, "acct-off", "AccountActive") or {}).get("message", "")
            and pool.condition(c.KIND_UPSTREAM, "acct-off", "AccountActive")
        ),
        what="AccountActive names what is unknown",
    )
    assert active["status"] == "True"
    assert pool.upstream_route("acct-off").healthy


def test_renewal_due_condition_and_event_fire_once(
    pool: Pool, namespace: str, fake_upstream: Any, operator_process: Callable[..., Any]
) -> None:
    credential = "acct-soon-" + "3" * 40
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _knobs(fake_upstream, credential, end_date=soon)
    operator_process(namespace, **FAST)
    _augment_token(pool, fake_upstream, "acct-soon", credential)
    _wait(lambda: pool.reason(c.KIND_UPSTREAM, "acct-soon", "RenewalDue") == "ExpiresSoon")
    first_check = _account(pool, "acct-soon")["checkedAt"]
    # Several more readings (every 2 s): the condition stays, the Event is not repeated.
    _wait(lambda: _account(pool, "acct-soon")["checkedAt"] != first_check, what="a re-read")
    later = _account(pool, "acct-soon")["checkedAt"]
    _wait(lambda: _account(pool, "acct-soon")["checkedAt"] != later, what="another re-read")
    events = [(t, r) for t, r, _ in pool.events("acct-soon")]
    assert events.count(("Warning", "ExpiresSoon")) == 1, events
    assert pool.upstream_route("acct-soon").healthy  # due, still routed to
