"""The console's pure parts about upstream accounts: sign-ins in memory (single use, bound to
their owner and namespace, expiring, bounded) and the standing a token row shows (verdicts from
the operator's conditions, Retired as a state of its own)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tokenpool_console import csv_export, sign_in_store
from tokenpool_console.api_models import SignInFinish
from tokenpool_console.mirror import NamespacePool
from tokenpool_console.pool_stats import health_counts
from tokenpool_console.projections import token_row
from tokenpool_console.sign_in_store import SignIns, owner_key
from tokenpool_console.token_standing import standing_json

ALICE, BOB = owner_key("session", "sid-a"), owner_key("session", "sid-b")


def test_a_sign_in_is_taken_once_by_its_owner_in_its_namespace() -> None:
    store = SignIns(600, "https://auth.example/authorize")
    sid, pending = store.start(ALICE, "ns")
    query = parse_qs(urlsplit(pending.url).query)
    assert pending.url.startswith("https://auth.example/authorize?") and query["state"] == [pending.state]
    assert pending.verifier not in pending.url and sid not in pending.url
    assert store.take(sid, BOB, "ns") is None, "another session"
    assert store.take(sid, ALICE, "other-ns") is None, "another namespace"
    assert store.take(sid, ALICE, "ns") is pending, "still there for its owner"
    assert store.take(sid, ALICE, "ns") is None, "single use"
    assert owner_key("session", "x") != owner_key("bearer", "x") and "sid-a" not in ALICE


def test_sign_ins_expire_and_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(sign_in_store.time, "monotonic", lambda: now[0])
    monkeypatch.setattr("tokenpool.accounts.augment_oauth.time.monotonic", lambda: now[0])
    store = SignIns(60)
    sid, pending = store.start(ALICE, "ns")
    assert pending.expires_at == 1060.0
    now[0] += 61  # expired, but still known: the admin is told it expired, not that it is unknown
    assert store.take(sid, ALICE, "ns") is pending
    sid, _ = store.start(ALICE, "ns")
    now[0] += 60 + sign_in_store.EXPIRED_KEPT_S + 1
    assert store.take(sid, ALICE, "ns") is None and len(store) == 0
    ids = [store.start(BOB, "ns")[0] for _ in range(sign_in_store.MAX_PER_OWNER + 2)]
    assert len(store) == sign_in_store.MAX_PER_OWNER, "an owner's oldest sign-ins make room"
    assert store.take(ids[0], BOB, "ns") is None and store.take(ids[-1], BOB, "ns") is not None
    monkeypatch.setattr(sign_in_store, "MAX_SIGN_INS", 3)
    for i in range(5):
        store.start(owner_key("session", str(i)), "ns")
    assert len(store) == 3


def test_finish_body_takes_the_answer_as_text_or_json() -> None:
    answer = {"code": "c", "state": "s", "tenant_url": "https://d1.api.augmentcode.com/"}
    as_json = SignInFinish.model_validate({"loginId": "x" * 20, "answer": answer, "name": "acct"})
    assert (
        as_json.answer_text == '{"code": "c", "state": "s", "tenant_url": "https://d1.api.augmentcode.com/"}'
    )
    as_text = SignInFinish.model_validate({"loginId": "x" * 20, "answer": " {} ", "name": "acct"})
    assert as_text.answer_text == "{}" and "answer" not in repr(as_text)
    for bad in ({"name": "Acct"}, {"labels": {"a b": "c"}}, {"answer": "x" * 9000}, {"maxConcurrency": 0}):
        with pytest.raises(ValueError):
            SignInFinish.model_validate({"loginId": "x" * 20, "answer": "{}", "name": "acct", **bad})


def _token(account: dict[str, Any] | None = None, **conditions: tuple[str, str]) -> Any:
    conds = [{"type": "Ready", "status": "True", "reason": "Ready"}]
    conds += [
        {"type": t, "status": s, "reason": r, "message": f"{t} says {r}"} for t, (s, r) in conditions.items()
    ]
    status: dict[str, Any] = {"conditions": conds}
    if account is not None:
        status["account"] = account
    return token_row({"metadata": {"name": "t"}, "spec": {"endpoint": "https://x/"}, "status": status})


def test_standing_comes_from_status_account_and_the_operators_verdicts() -> None:
    assert _token().standing is None and standing_json(None) is None
    account = {
        "plan": "Pro",
        "expiresAt": "2027-03-01T00:00:00Z",
        "creditsRemaining": 40,
        "creditsTotal": 1000,
        "unknown": ["models"],
        "checkedAt": "2026-11-29T21:20:00Z",
    }
    due = _token(account, AccountActive=("True", "Active"), RenewalDue=("True", "CreditsLow"))
    assert due.state == "Healthy" and not due.retired and due.state_reason == ""
    assert due.standing.renewal_due and due.standing.expires_on == "2027-03-01"
    shown = standing_json(due.standing)
    assert shown is not None
    assert (shown["plan"], shown["creditsRemaining"], shown["creditsTotal"]) == ("Pro", 40, 1000)
    assert shown["renewalDue"] == {
        "status": True,
        "reason": "CreditsLow",
        "message": "RenewalDue says CreditsLow",
    }
    assert shown["unknown"] == ["models"] and shown["retired"] is False
    spent = _token({**account, "depleted": True}, AccountActive=("False", "Depleted"))
    assert (spent.state, spent.state_reason, spent.retired) == ("Retired", "Depleted", True)
    # A malformed account document still shows the operator's verdict.
    odd = _token({"creditsRemaining": -5}, AccountActive=("False", "Refused"))
    assert odd.state == "Retired" and odd.standing.credits_remaining is None


def test_retired_is_its_own_state_and_count() -> None:
    retired = {"AccountActive": ("False", "Expired")}
    unhealthy_too = token_row(
        {
            "metadata": {"name": "u"},
            "spec": {"endpoint": "https://x/"},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "AccountActive", "status": "False", "reason": "Refused"},
                ],
                "health": {"state": "Unhealthy", "reason": "Unauthorized"},
            },
        }
    )
    assert unhealthy_too.state == "Retired", "the account's verdict before the proxy's"
    suspended = token_row(
        {
            "metadata": {"name": "s"},
            "spec": {"endpoint": "https://x/", "suspended": True},
            "status": {"conditions": [{"type": "AccountActive", "status": "False", "reason": "Depleted"}]},
        }
    )
    assert suspended.state == "Suspended"
    counts = health_counts([_token({}, **retired), unhealthy_too, suspended, _token()])
    assert (counts["Retired"], counts["Suspended"], counts["Healthy"]) == (2, 1, 1)


def test_the_tokens_csv_has_the_standing() -> None:
    pool = NamespacePool("ns")
    account = {"plan": "Pro", "creditsRemaining": 0, "creditsTotal": 1000}
    account["expiresAt"] = "2027-03-01T00:00:00Z"
    pool.tokens["t"] = _token(account, AccountActive=("False", "Depleted"))
    header, row = "".join(csv_export.tokens(pool, "2026-11-29", 7)).splitlines()[:2]
    columns = dict(zip(header.split(","), row.split(","), strict=False))
    assert (columns["state"], columns["reason"], columns["plan"]) == ("Retired", "Depleted", "Pro")
    assert (columns["creditsRemaining"], columns["creditsTotal"]) == ("0", "1000")
    assert columns["expiresAt"] == "2027-03-01T00:00:00Z"
