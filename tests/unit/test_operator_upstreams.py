"""Credential resolution, health → Healthy condition, and the compiled upstream route."""

from __future__ import annotations

import base64

from tokenpool_operator import upstreams

from tokenpool.contract import compiled as c

REF = {"name": "cred", "key": "token"}
GOOD = "0123456789abcdef" * 4


def sec(value: str | None, key: str = "token") -> dict:
    data = {} if value is None else {key: base64.b64encode(value.encode()).decode()}
    return {"metadata": {"name": "cred"}, "data": data}


def test_credential_resolution_reasons_never_include_the_value() -> None:
    assert upstreams.resolve_credential(REF, sec(f"  {GOOD}\n")).token == GOOD
    assert upstreams.resolve_credential(REF, sec(f"Bearer {GOOD}")).token == GOOD
    assert upstreams.resolve_credential(REF, None).reason == "CredentialSecretNotFound"
    assert upstreams.resolve_credential(REF, sec(GOOD, key="other")).reason == "CredentialKeyNotFound"
    bad = upstreams.resolve_credential(REF, sec("has spaces inside it"))
    assert bad.reason == "CredentialMalformed" and "spaces inside" not in bad.message
    raw = {"metadata": {"name": "cred"}, "data": {"token": "!!!notbase64"}}
    assert upstreams.resolve_credential(REF, raw).reason == "CredentialMalformed"


def test_health_condition_from_the_proxy_status() -> None:
    assert upstreams.health_condition({}, None).ok
    un = upstreams.health_condition({}, {"state": "Unhealthy", "reason": "Unauthorized"})
    assert (un.ok, un.reason) == (False, "Unauthorized")
    cool = upstreams.health_condition({}, {"state": "CoolingDown", "reason": "RateLimited"})
    assert (cool.ok, cool.reason) == (True, "CoolingDown")
    susp = upstreams.health_condition({"suspended": True}, None)
    assert (susp.ok, susp.reason) == (False, "Suspended")


def body(**spec: object) -> dict:
    base = {"provider": "Augment", "endpoint": "https://d5.api.augmentcode.com/", "credentialSecretRef": REF}
    return {"metadata": {"name": "ut1"}, "spec": {**base, **spec}, "status": {}}


def test_reconcile_compiles_the_route_only_with_a_credential() -> None:
    ok = upstreams.reconcile_upstream(body(maxConcurrency=2), upstreams.resolve_credential(REF, sec(GOOD)))
    assert ok.route is not None and ok.eligible
    route = c.parse_upstream_route({c.UPSTREAM_ROUTE_KEY: c.dump(ok.route)})
    assert (route.token, route.max_concurrency, route.healthy) == (GOOD, 2, True)
    assert [x.type for x in ok.conditions] == ["Ready", "Healthy", "CredentialResolved"]
    missing = upstreams.reconcile_upstream(body(), upstreams.resolve_credential(REF, None))
    assert missing.route is None and not missing.eligible
    assert (missing.conditions[0].ok, missing.conditions[0].reason) == (False, "CredentialSecretNotFound")


def test_unhealthy_token_is_compiled_unhealthy_and_not_eligible() -> None:
    b = body()
    b["status"] = {"health": {"state": "Unhealthy", "reason": "OutOfCredits"}}
    res = upstreams.reconcile_upstream(b, upstreams.resolve_credential(REF, sec(GOOD)))
    assert res.route is not None and not res.route.healthy and res.route.health_reason == "OutOfCredits"
    assert not res.eligible


def test_openai_endpoint_loses_its_trailing_slash_augment_keeps_it() -> None:
    assert (
        upstreams.normalise_endpoint("OpenAI", "https://api.example.com/v1/") == "https://api.example.com/v1"
    )
    assert upstreams.normalise_endpoint("Augment", "https://d1.api.augmentcode.com/") == (
        "https://d1.api.augmentcode.com/"
    )


def test_each_provider_is_compiled_as_itself() -> None:
    cred = upstreams.resolve_credential(REF, sec(GOOD))
    for provider, endpoint, compiled in (
        ("OpenAI", "https://api.example.com/v1/", "https://api.example.com/v1"),
        ("Anthropic", "https://api.anthropic.com/", "https://api.anthropic.com"),
    ):
        res = upstreams.reconcile_upstream(body(provider=provider, endpoint=endpoint), cred)
        assert res.route is not None and (res.route.provider, res.route.endpoint) == (provider, compiled)


def _token(status: dict) -> dict:
    spec = {"provider": "Augment", "endpoint": "https://d1.api.augmentcode.com/", "credentialSecretRef": REF}
    return {"metadata": {"name": "t", "namespace": "ns", "uid": "u"}, "spec": spec, "status": status}


def test_account_standing_conditions_and_routing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 29, tzinfo=UTC)
    cred = upstreams.resolve_credential(REF, sec(GOOD))
    margins = upstreams.RenewalMargins(days=7, credits=100)

    unread = upstreams.reconcile_upstream(_token({}), cred, margins, now)
    assert [cd.type for cd in unread.conditions] == ["Ready", "Healthy", "CredentialResolved"]

    usable = upstreams.reconcile_upstream(
        _token({"account": {"active": True, "creditsRemaining": 500, "creditsTotal": 1000}}),
        cred,
        margins,
        now,
    )
    by_type = {cd.type: cd for cd in usable.conditions}
    assert by_type["AccountActive"].ok and not by_type["RenewalDue"].ok
    assert usable.eligible and usable.route is not None and usable.route.healthy

    low = upstreams.reconcile_upstream(_token({"account": {"creditsRemaining": 20}}), cred, margins, now)
    assert {cd.type: cd.reason for cd in low.conditions}["RenewalDue"] == "CreditsLow"
    assert low.eligible and low.route is not None and low.route.healthy  # due, still routed

    spent = upstreams.reconcile_upstream(_token({"account": {"depleted": True}}), cred, margins, now)
    active = {cd.type: cd for cd in spent.conditions}["AccountActive"]
    assert (active.ok, active.reason) == (False, "Depleted")
    assert not spent.eligible and spent.route is not None
    assert (spent.route.healthy, spent.route.health_reason) == (False, "Depleted")
    assert {cd.type: cd for cd in spent.conditions}["Healthy"].ok  # its own verdict, not Unhealthy

    ended = upstreams.reconcile_upstream(
        _token({"account": {"active": True, "expiresAt": "2026-11-28T00:00:00Z"}}), cred, margins, now
    )
    assert {cd.type: cd.reason for cd in ended.conditions}["AccountActive"] == "Expired"
    refused = upstreams.reconcile_upstream(_token({"account": {"refusals": 2}}), cred, margins, now)
    assert {cd.type: cd.reason for cd in refused.conditions}["AccountActive"] == "Refused"
    once = upstreams.reconcile_upstream(_token({"account": {"refusals": 1}}), cred, margins, now)
    assert once.eligible  # a first refusal is confirmed before the account is retired
    garbled = upstreams.reconcile_upstream(_token({"account": {"creditsRemaining": "x"}}), cred, margins, now)
    assert garbled.eligible and len(garbled.conditions) == 3  # unreadable standing: as if unread
