"""Grant book, condition merging, settings and the CRD generator."""

from __future__ import annotations

import pytest
import yaml
from tokenpool_operator import crdgen
from tokenpool_operator.book import GrantBook
from tokenpool_operator.conditions import Cond, merge, ready
from tokenpool_operator.settings import OperatorSettings


def test_grant_book_counts_holders_and_seed_never_overrides_a_decision() -> None:
    book = GrantBook()
    book.seed(("ns", "a"), ["t1", "t2"])
    book.seed(("ns", "b"), ["t1"])
    assert book.count(("ns", "t1")) == 2
    assert book.count(("ns", "t1"), excluding=[("ns", "a")]) == 1
    book.assign(("ns", "a"), ["t2"])
    book.seed(("ns", "a"), ["t1", "t2"])  # a stale watch event: ignored
    assert book.count(("ns", "t1")) == 1 and book.held(("ns", "a")) == ("t2",)
    book.mark_short(("ns", "b"), True)
    assert book.short("ns") == [("ns", "b")] and book.short("other") == []
    assert book.release(("ns", "b")) == ("t1",)
    assert book.count(("ns", "t1")) == 0 and book.short("ns") == []


def test_merge_keeps_transition_time_while_status_is_unchanged() -> None:
    first = merge(None, [Cond("Ready", True, "Ready", "ok")], 1, "2026-01-01T00:00:00Z")
    same = merge(first, [Cond("Ready", True, "Ready", "ok")], 2, "2026-02-01T00:00:00Z")
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z" and same[0]["observedGeneration"] == 2
    flipped = merge(same, [Cond("Ready", False, "Broken", "no")], 2, "2026-03-01T00:00:00Z")
    assert flipped[0]["lastTransitionTime"] == "2026-03-01T00:00:00Z" and flipped[0]["status"] == "False"


def test_ready_summary_takes_the_first_failure() -> None:
    assert ready([Cond("A", True, "Fine"), Cond("B", False, "Bad", "why")], "ok") == Cond(
        "Ready", False, "Bad", "why"
    )
    assert ready([Cond("A", True, "Fine")], "ok").ok


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENPOOL_OPERATOR_NAMESPACES", "team-a, team-b")
    monkeypatch.setenv("TOKENPOOL_OPERATOR_MAX_QUOTA", "5")
    s = OperatorSettings()
    assert s.namespaces == ["team-a", "team-b"] and s.max_quota == 5 and s.default_quota == 3
    monkeypatch.setenv("TOKENPOOL_OPERATOR_DEFAULT_QUOTA", "6")
    with pytest.raises(ValueError, match="default_quota"):
        OperatorSettings()


@pytest.mark.parametrize("name", sorted(crdgen.all_crds()))
def test_committed_crds_equal_the_generated_ones(name: str) -> None:
    committed = (crdgen.CRD_DIR / name).read_text()
    assert committed == crdgen.render(crdgen.all_crds()[name]), "run: python -m tokenpool_operator.crdgen"
    doc = yaml.safe_load(committed)
    assert doc["spec"]["names"]["categories"] == ["tokenpool"]
    assert doc["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_selector_candidates_are_memoized_and_invalidated_by_token_changes() -> None:
    from tokenpool_operator.allocations import TokenView
    from tokenpool_operator.state import State

    state = State()
    state.put_token("ns", TokenView("a", {"p": "1"}))
    state.put_token("ns", TokenView("b", {"p": "2"}))
    pick = state.candidates("ns")
    sel = {"matchLabels": {"p": "1"}}
    assert [t.name for t in pick(sel)] == ["a"]
    assert pick(sel) is pick(sel)  # memoized
    state.put_token("ns", TokenView("b", {"p": "2"}))  # unchanged view: memo kept
    assert ("ns", '{"matchLabels": {"p": "1"}}') in state.matching
    state.put_token("ns", TokenView("b", {"p": "1"}))  # relabelled: memo dropped
    assert [t.name for t in pick(sel)] == ["a", "b"]
    state.put_token("ns", TokenView("a", {"p": "1"}, eligible=False))
    assert [t.name for t in pick(sel)] == ["b"]
    state.drop_token("ns", "b")
    assert pick(sel) == []
