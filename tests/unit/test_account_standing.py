"""Account standing: reading the three Augment endpoints (against the fake upstream's account
endpoints), what is unknown, and the retirement and renewal verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tokenpool.contract.account_status import AccountStatus, next_check, renewal_due, retirement
from tokenpool.upstream import standing

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
async def fake(fake_upstream):
    async with aiohttp.ClientSession(base_url=fake_upstream.url) as http:
        yield http, fake_upstream.tenant("t1")


async def _read(fake, account: str = "acct") -> standing.Reading:
    tenant = fake[1]
    async with aiohttp.ClientSession() as session:
        return await standing.read_standing(session, tenant, {"Authorization": f"Bearer {account}"}, NOW)


async def test_a_healthy_account_is_read_completely(fake) -> None:
    http, _ = fake
    knobs = {
        "plan": "Pro",
        "end_date": "2027-01-15T00:00:00Z",
        "credits_total": 1000,
        "credits_remaining": 740,
    }
    await http.put("_control/accounts/acct", json=knobs)
    reading = await _read(fake)
    assert reading.refused_status is None
    account = reading.account
    assert (account.plan, account.active, account.expires_at, account.depleted) == (
        "Pro",
        True,
        "2027-01-15T00:00:00Z",
        False,
    )
    assert (account.credits_remaining, account.credits_total, account.default_model) == (
        740,
        1000,
        "fake-default",
    )
    assert account.unknown == [] and account.checked_at == "2026-11-29T12:00:00Z"
    assert retirement(account, NOW) is None


async def test_missing_endpoints_are_unknown_and_keep_the_last_value(fake) -> None:
    http, _ = fake
    first = (await _read(fake)).account
    await http.put("_control/accounts/acct", json={"missing": ["get-credit-info", "subscription-info"]})
    reading = await _read(fake)
    assert reading.refused_status is None  # a switched-off endpoint says nothing bad about the account
    assert reading.account.unknown == ["subscription", "credits"]
    assert reading.account.credits_remaining is None
    merged = reading.account.merged_over(first)
    assert merged.credits_remaining == first.credits_remaining and merged.plan == first.plan
    assert merged.unknown == ["subscription", "credits"]
    assert retirement(merged, NOW) is None


async def test_banned_account_is_refused_expired_and_depleted_are_retired(fake) -> None:
    http, _ = fake
    await http.put("_control/accounts/banned", json={"banned": True})
    assert (await _read(fake, "banned")).refused_status == 403
    await http.put("_control/accounts/ended", json={"expired": True})
    ended = (await _read(fake, "ended")).account
    assert ended.active is False
    assert retirement(ended, NOW) == ("Expired", "the upstream subscription is inactive")
    await http.put("_control/accounts/spent", json={"credits_remaining": 0, "depleted": True})
    spent = (await _read(fake, "spent")).account
    assert retirement(spent, NOW) == ("Depleted", "the upstream says the account's balance is used up")


def test_verdicts_and_schedule() -> None:
    soon = AccountStatus(
        active=True, expires_at="2026-12-01T00:00:00Z", credits_remaining=500, credits_total=1000
    )
    assert renewal_due(soon, NOW, days_margin=3, credits_margin=50)[0] == "ExpiresSoon"
    assert renewal_due(soon, NOW, days_margin=1, credits_margin=50) is None
    low = AccountStatus(active=True, credits_remaining=20, credits_total=1000)
    assert renewal_due(low, NOW, days_margin=3, credits_margin=50) == (
        "CreditsLow",
        "20 credits left of 1000",
    )
    past = AccountStatus(active=True, expires_at="2026-11-28T00:00:00Z")
    assert retirement(past, NOW)[0] == "Expired"
    assert renewal_due(past, NOW, 3, 50) is None  # retired, not "due"
    interval = timedelta(hours=6)
    assert next_check(low, NOW, interval) == NOW + interval
    spent = AccountStatus(depleted=True, expires_at="2026-11-29T20:00:00Z")
    assert next_check(spent, NOW, interval) == datetime(2026, 11, 29, 20, tzinfo=UTC)  # its billing point
    assert next_check(AccountStatus(active=False), NOW, interval) == NOW + timedelta(days=1)
    assert retirement(AccountStatus(credits_remaining=0, credits_total=0), NOW) is None  # no credit system


@pytest.mark.parametrize(
    "doc",
    [None, [], {"subscription": 1}, {"subscription": {"Other": {}}}, {"usage_units_total": "x"}],
)
def test_odd_shapes_are_unknown_not_errors(doc) -> None:
    assert standing.parse_subscription(doc) is None or doc is None
    assert standing.parse_credits(doc) is None
    assert standing.parse_models(doc) is None
