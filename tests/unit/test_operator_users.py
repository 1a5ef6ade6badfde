"""Personal-token decisions and the compiled user route."""

from __future__ import annotations

import base64

from tokenpool_operator import users

from tokenpool.contract import compiled as c


def secret(token: str, rotated_for: str = "", name: str = "alice-personal-token") -> dict:
    return {
        "metadata": {"name": name, "annotations": {c.ANNOTATION_ROTATED_FOR: rotated_for}},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def test_generates_64_lowercase_hex_only_when_the_secret_is_missing() -> None:
    plan = users.plan_generated(None, "")
    assert plan.action == "generate" and plan.token is not None
    assert users.GENERATED.match(plan.token)
    assert users.plan_generated(None, "").token != plan.token


def test_existing_token_is_kept_as_is() -> None:
    tok = "a" * 64
    plan = users.plan_generated(secret(tok), "")
    assert (plan.action, plan.token) == ("keep", tok)


def test_rotation_happens_once_per_annotation_value() -> None:
    tok = "b" * 64
    rotated = users.plan_generated(secret(tok, rotated_for=""), "2026-11-26")
    assert rotated.action == "rotate" and rotated.token != tok
    again = users.plan_generated(secret(tok, rotated_for="2026-11-26"), "2026-11-26")
    assert again.action == "keep"


def test_malformed_generated_token_is_reported_not_regenerated() -> None:
    plan = users.plan_generated(secret("not-hex"), "")
    assert plan.action == "invalid" and plan.token is None
    assert "not-hex" not in plan.message


def test_bring_your_own_token() -> None:
    ref = {"name": "migrated", "key": "pt"}
    byo = "legacy-token-0123456789"
    s = {"metadata": {"name": "migrated"}, "data": {"pt": base64.b64encode(byo.encode()).decode()}}
    assert users.plan_byo(ref, s).token == byo
    assert users.plan_byo(ref, None).reason == "PersonalTokenSecretNotFound"
    assert users.plan_byo({"name": "migrated"}, s).reason == "PersonalTokenKeyNotFound"
    short = {"metadata": {"name": "migrated"}, "data": {"pt": base64.b64encode(b"short").decode()}}
    bad = users.plan_byo(ref, short)
    assert bad.reason == "PersonalTokenInvalid" and "short" not in bad.message


def test_effective_quota_defaults_and_caps() -> None:
    assert users.effective_quota({}, 3, 10)[0] == 3
    assert users.effective_quota({"tokenQuota": 5}, 3, 10)[0] == 5
    capped, cond = users.effective_quota({"tokenQuota": 50}, 3, 10)
    assert capped == 10 and not cond.ok and cond.reason == "QuotaAboveMaximum"


def test_compiled_route_has_the_hash_never_the_token() -> None:
    tok = "c" * 64
    body = {
        "metadata": {"name": "alice", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"role": "Admin", "suspended": True, "limits": {"requestsPerDay": 100}, "email": "a@x.io"},
    }
    route = users.compile_route(body, tok, 3, (c.AllocatedUpstream(name="t1", priority=1),))
    text = c.dump(route)
    assert tok not in text
    parsed = c.parse_user_route({c.USER_ROUTE_KEY: text})
    assert parsed.token_sha256 == c.hash_personal_token(tok)
    assert parsed.role == "Admin" and parsed.suspended and parsed.limits.requests_per_day == 100
    assert [u.name for u in parsed.upstreams] == ["t1"]
