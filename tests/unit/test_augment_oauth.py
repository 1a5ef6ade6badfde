"""The OAuth (PKCE) pieces of adding an Augment account: challenge, URL, answer parsing, checks."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from tokenpool.accounts import augment_oauth as oauth


def test_s256_challenge_matches_rfc7636_appendix_b() -> None:
    assert oauth._challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_start_builds_the_authorize_url_and_keeps_the_verifier_out_of_it() -> None:
    pending = oauth.start()
    query = {k: v[0] for k, v in parse_qs(urlsplit(pending.url).query).items()}
    assert pending.url.startswith(oauth.AUTHORIZE_URL + "?")
    assert query == {
        "response_type": "code",
        "code_challenge": oauth._challenge(pending.verifier),
        "client_id": "v",
        "state": pending.state,
        "prompt": "login",
    }
    assert pending.verifier not in pending.url
    assert pending.verifier not in repr(pending)
    assert 43 <= len(pending.verifier) <= 128
    assert oauth.start().state != pending.state


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "paste the JSON"),
        ("[1]", "must be a JSON object"),
        ('{"code": "c", "state": "s"}', "has no tenant_url"),
        ('{"code": "", "state": "s", "tenant_url": "https://d1.api.augmentcode.com/"}', "has no code"),
    ],
)
def test_malformed_answers_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(oauth.LoginError, match=message):
        oauth.parse_answer(text)


def test_answer_gets_a_trailing_slash_and_hides_the_code() -> None:
    answer = oauth.parse_answer(
        '{"code": "abc", "state": "s", "tenant_url": " https://d5.api.augmentcode.com "}'
    )
    assert answer.tenant_url == "https://d5.api.augmentcode.com/"
    assert "abc" not in repr(answer)


@pytest.mark.parametrize(
    ("tenant", "allowed", "message"),
    [
        ("https://d5.api.augmentcode.com/", oauth.ALLOWED_TENANT_HOSTS, None),
        ("https://evil.example/", oauth.ALLOWED_TENANT_HOSTS, "not an allowed Augment host"),
        ("https://augmentcode.com.evil.example/", oauth.ALLOWED_TENANT_HOSTS, "not an allowed"),
        ("http://127.0.0.1:9/t/", oauth.ALLOWED_TENANT_HOSTS, "not an allowed"),  # loopback: opt-in
        ("http://127.0.0.1:9/t/", ("127.0.0.1",), None),
        ("http://d5.api.augmentcode.com/", oauth.ALLOWED_TENANT_HOSTS, "must be https"),
    ],
)
def test_tenant_hosts_and_schemes(tenant: str, allowed: tuple[str, ...], message: str | None) -> None:
    pending = oauth.start()
    answer = oauth.Answer("code", pending.state, tenant)
    if message is None:
        oauth.check(pending, answer, allowed)
    else:
        with pytest.raises(oauth.LoginError, match=message):
            oauth.check(pending, answer, allowed)


def test_state_and_expiry_are_checked() -> None:
    pending = oauth.start()
    with pytest.raises(oauth.LoginError, match="another sign-in"):
        oauth.check(pending, oauth.Answer("c", "other", "https://d1.api.augmentcode.com/"))
    expired = dataclasses.replace(pending, expires_at=0.0)
    with pytest.raises(oauth.LoginError, match="expired"):
        oauth.check(expired, oauth.Answer("c", pending.state, "https://d1.api.augmentcode.com/"))
