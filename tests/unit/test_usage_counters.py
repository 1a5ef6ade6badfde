"""Counters, day rollover, history bound and the merge of deltas into status documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenpool_proxy.usage.counters import UsageBook, upstream_key, user_key
from tokenpool_proxy.usage.merge import apply_delta

from tests.support.usage_counting import served
from tokenpool.contract.status_fields import HISTORY_DAYS, Usage, to_wire

T0 = datetime(2026, 11, 25, 23, 59, 30, tzinfo=UTC)


def test_record_counts_user_and_upstream_by_outcome() -> None:
    book = UsageBook()
    served(book, "alice", "tok-a", True, 10, 5, T0)
    served(book, "alice", "tok-b", False, 7, 0, T0)
    user = book.pending[user_key("alice")]
    assert (user.total.requests, user.total.successes, user.total.errors) == (2, 1, 1)
    assert (user.total.prompt_tokens, user.total.completion_tokens) == (17, 5)
    assert set(user.upstream_days["2026-11-25"]) == {"tok-a", "tok-b"}
    assert book.pending[upstream_key("tok-a")].total.requests == 1
    assert book.pending[upstream_key("tok-b")].total.errors == 1


def test_increments_keep_their_own_utc_day_across_midnight() -> None:
    book = UsageBook()
    served(book, "alice", "tok", True, 1, 1, T0)
    served(book, "alice", "tok", True, 1, 1, T0 + timedelta(seconds=45))
    delta = book.take()[user_key("alice")]
    doc = apply_delta(None, delta, T0 + timedelta(minutes=1), per_upstream=True)
    assert [(d.date, d.requests) for d in doc.daily] == [("2026-11-25", 1), ("2026-11-26", 1)]
    assert doc.today is not None and (doc.today.date, doc.today.requests) == ("2026-11-26", 1)
    assert doc.total.requests == 2
    assert [(u.name, u.requests) for u in doc.today_by_upstream or []] == [("tok", 1)]


def test_merge_adds_to_what_other_replicas_wrote() -> None:
    other = UsageBook()
    for _ in range(3):
        served(other, "alice", "tok", True, 2, 3, T0)
    first = apply_delta(None, other.take()[user_key("alice")], T0, per_upstream=True)
    mine = UsageBook()
    served(mine, "alice", "tok", False, 1, 0, T0)
    served(mine, "alice", "tok2", True, 1, 0, T0)
    merged = apply_delta(first, mine.take()[user_key("alice")], T0, per_upstream=True)
    assert merged.total.requests == 5 and merged.total.errors == 1
    assert merged.total.prompt_tokens == 8 and merged.total.completion_tokens == 9
    assert merged.today is not None and merged.today.requests == 5
    assert {u.name: u.requests for u in merged.today_by_upstream or []} == {"tok": 4, "tok2": 1}
    assert merged.last_used_at == "2026-11-25T23:59:30Z"


def test_credits_are_summed_per_object_and_day_without_float_drift() -> None:
    """Each replica adds 0.1 credits three times, one after the other's document: 0.6, not
    0.6000000000000001; objects nobody priced carry no ``credits`` at all (documents stay as
    small as before for Augment-only pools)."""
    doc = None
    for _ in range(2):
        book = UsageBook()
        for _ in range(3):
            book.attempt("alice", "priced", True, 1, 1, T0, credits=0.1)
        book.attempt("alice", "free", True, 1, 1, T0)
        doc = apply_delta(doc, book.take()[user_key("alice")], T0, per_upstream=True)
        token = apply_delta(None, book.flushing[upstream_key("free")], T0, per_upstream=False)
        assert "credits" not in to_wire(token)["total"]
    assert doc is not None and doc.total.credits == 0.6 and doc.today is not None and doc.today.credits == 0.6
    assert [d.credits for d in doc.daily] == [0.6]
    split = {u.name: u.credits for u in doc.today_by_upstream or []}
    assert split == {"priced": 0.6, "free": None}
    wire = to_wire(doc)
    assert wire["total"]["credits"] == 0.6 and "credits" not in wire["todayByUpstream"][0]


def test_yesterdays_split_is_not_carried_into_today() -> None:
    book = UsageBook()
    served(book, "alice", "tok", True, 0, 0, T0)
    yesterday = apply_delta(None, book.take()[user_key("alice")], T0, per_upstream=True)
    served(book, "alice", "tok2", True, 0, 0, T0 + timedelta(hours=1))
    today = apply_delta(yesterday, book.take()[user_key("alice")], T0 + timedelta(hours=1), per_upstream=True)
    assert [u.name for u in today.today_by_upstream or []] == ["tok2"]
    assert today.today is not None and today.today.requests == 1


def test_history_keeps_the_newest_31_days() -> None:
    book = UsageBook()
    doc: Usage | None = None
    for day in range(40):
        now = T0 + timedelta(days=day)
        served(book, "alice", "tok", True, 0, 0, now)
        doc = apply_delta(doc, book.take()[user_key("alice")], now, per_upstream=False)
    assert doc is not None
    assert len(doc.daily) == HISTORY_DAYS
    assert doc.daily[-1].date == "2027-01-03" and doc.daily[0].date == "2026-12-04"
    assert doc.total.requests == 40
    assert doc.today_by_upstream is None and "todayByUpstream" not in to_wire(doc)


def test_minute_window_keeps_only_the_newest_minute() -> None:
    book = UsageBook()
    served(book, "alice", "tok", True, 0, 0, T0)
    doc = apply_delta(None, book.take()[user_key("alice")], T0, per_upstream=False)
    served(book, "alice", "tok", True, 0, 0, T0 + timedelta(seconds=5))
    doc = apply_delta(doc, book.take()[user_key("alice")], T0, per_upstream=False)
    assert doc.minute is not None and (doc.minute.start, doc.minute.requests) == ("2026-11-25T23:59Z", 2)
    served(book, "alice", "tok", True, 0, 0, T0 + timedelta(seconds=40))
    doc = apply_delta(doc, book.take()[user_key("alice")], T0, per_upstream=False)
    assert doc.minute is not None and (doc.minute.start, doc.minute.requests) == ("2026-11-26T00:00Z", 1)


def test_failed_write_gives_the_delta_back_and_commit_removes_it() -> None:
    book = UsageBook()
    served(book, "alice", "tok", True, 0, 0, T0)
    book.take()
    served(book, "alice", "tok", True, 0, 0, T0)  # arrives while the flush runs
    assert book.unflushed(user_key("alice")).total.requests == 2
    book.give_back(user_key("alice"))
    assert book.pending[user_key("alice")].total.requests == 2 and not book.flushing.get(user_key("alice"))
    delta = book.take()[user_key("alice")]
    assert apply_delta(None, delta, T0, per_upstream=True).total.requests == 2
    book.commit(user_key("alice"))
    assert book.unflushed(user_key("alice")).total.requests == 0


def test_wire_shape_is_camel_case() -> None:
    book = UsageBook()
    served(book, "alice", "tok", True, 3, 4, T0)
    wire = to_wire(apply_delta(None, book.take()[user_key("alice")], T0, per_upstream=True))
    assert wire["total"] == {
        "requests": 1,
        "successes": 1,
        "errors": 0,
        "promptTokens": 3,
        "completionTokens": 4,
    }
    assert wire["lastUsedAt"] == "2026-11-25T23:59:30Z"
    assert wire["todayByUpstream"] == [
        {"name": "tok", "requests": 1, "successes": 1, "errors": 0, "promptTokens": 3, "completionTokens": 4}
    ]
    doc = Usage.model_validate(wire)
    assert doc.total.prompt_tokens == 3 and doc.today_by_upstream is not None
