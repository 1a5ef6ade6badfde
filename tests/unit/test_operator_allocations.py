"""Quota, explicit names, selectors and route ordering: the pure allocation decisions."""

from __future__ import annotations

from collections import Counter

from tokenpool_operator.allocations import (
    AllocationView,
    Grant,
    TokenView,
    matches,
    resolve_user,
    route_upstreams,
)


def toks(*views: TokenView) -> dict[str, TokenView]:
    return {v.name: v for v in views}


def reasons(grant: Grant) -> tuple[str, str]:
    return grant.conditions[0].reason, grant.conditions[1].reason


def test_explicit_names_are_granted_and_missing_ones_reported() -> None:
    allocs = [AllocationView("a", "alice", "2026-01-01T00:00:00Z", tokens=("t1", "ghost"))]
    g = resolve_user(allocs, 3, toks(TokenView("t1")), lambda _: 0, {})["a"]
    assert g.tokens == ("t1",)
    assert reasons(g) == ("TokenNotFound", "WithinQuota")
    assert "ghost" in g.conditions[0].message


def test_older_allocations_win_the_quota_and_newer_report_quota_exceeded() -> None:
    tokens = toks(*(TokenView(f"t{i}") for i in range(5)))
    allocs = [
        AllocationView("newer", "alice", "2026-01-02T00:00:00Z", tokens=("t3", "t4")),
        AllocationView("older", "alice", "2026-01-01T00:00:00Z", tokens=("t0", "t1")),
    ]
    grants = resolve_user(allocs, 3, tokens, lambda _: 0, {})
    assert grants["older"].tokens == ("t0", "t1")
    assert grants["newer"].tokens == ("t3",)
    assert reasons(grants["newer"]) == ("QuotaExceeded", "QuotaExceeded")
    assert reasons(grants["older"]) == ("Granted", "WithinQuota")
    raised = resolve_user(allocs, 4, tokens, lambda _: 0, {})
    assert raised["newer"].tokens == ("t3", "t4")
    assert reasons(raised["newer"]) == ("Granted", "WithinQuota")


def test_quota_counts_distinct_tokens() -> None:
    allocs = [
        AllocationView("a", "u", "1", tokens=("t1",)),
        AllocationView("b", "u", "2", tokens=("t1",)),
    ]
    grants = resolve_user(allocs, 1, toks(TokenView("t1")), lambda _: 0, {})
    assert grants["b"].tokens == ("t1",) and reasons(grants["b"])[0] == "Granted"


def test_explicit_names_respect_max_allocations_unless_already_held() -> None:
    tokens = toks(TokenView("solo", max_allocations=1))
    allocs = [AllocationView("a", "u", "1", tokens=("solo",))]
    taken = resolve_user(allocs, 3, tokens, lambda _: 1, {})["a"]
    assert taken.tokens == () and reasons(taken)[0] == "TokenUnavailable"
    kept = resolve_user(allocs, 3, tokens, lambda _: 1, {"a": ("solo",)})["a"]
    assert kept.tokens == ("solo",)


def test_selector_picks_least_allocated_matching_eligible_tokens() -> None:
    tokens = toks(
        TokenView("busy", {"pool": "a"}),
        TokenView("idle", {"pool": "a"}),
        TokenView("other", {"pool": "b"}),
        TokenView("sick", {"pool": "a"}, eligible=False),
        TokenView("quiet", {"pool": "a"}),
    )
    load = Counter({"busy": 5, "quiet": 1})
    alloc = AllocationView("s", "u", "1", selector={"matchLabels": {"pool": "a"}}, count=2)
    g = resolve_user([alloc], 3, tokens, lambda t: load[t], {})["s"]
    assert g.tokens == ("idle", "quiet")
    assert reasons(g)[0] == "Granted"


def test_selector_respects_max_allocations_and_reports_insufficient_tokens() -> None:
    tokens = toks(
        TokenView("x", {"p": "1"}, max_allocations=1), TokenView("y", {"p": "1"}, max_allocations=2)
    )
    alloc = AllocationView("s", "u", "1", selector={"matchLabels": {"p": "1"}}, count=2)
    g = resolve_user([alloc], 3, tokens, lambda t: {"x": 1, "y": 1}[t], {})["s"]
    assert g.tokens == ("y",)
    assert reasons(g)[0] == "InsufficientTokens"


def test_selector_keeps_its_picks_and_replaces_an_unhealthy_one() -> None:
    sel = {"matchLabels": {"p": "1"}}
    alloc = AllocationView("s", "u", "1", selector=sel, count=2)
    healthy = toks(*(TokenView(n, {"p": "1"}) for n in ("a", "b", "c")))
    # Current picks stay even though "c" is now less loaded: no reshuffling.
    g = resolve_user([alloc], 3, healthy, lambda t: {"a": 4, "b": 4, "c": 0}[t], {"s": ("a", "b")})["s"]
    assert g.tokens == ("a", "b")
    sick = dict(healthy, a=TokenView("a", {"p": "1"}, eligible=False))
    g = resolve_user([alloc], 3, sick, lambda t: 0, {"s": ("a", "b")})["s"]
    assert g.tokens == ("b", "c")


def test_selector_stops_at_the_quota() -> None:
    tokens = toks(*(TokenView(f"t{i}", {"p": "1"}) for i in range(4)))
    alloc = AllocationView("s", "u", "1", selector={"matchLabels": {"p": "1"}}, count=4)
    g = resolve_user([alloc], 2, tokens, lambda _: 0, {})["s"]
    assert len(g.tokens) == 2 and reasons(g) == ("QuotaExceeded", "QuotaExceeded")


def test_suspended_allocations_and_missing_users_grant_nothing() -> None:
    tokens = toks(TokenView("t1"))
    susp = AllocationView("a", "u", "1", tokens=("t1",), suspended=True)
    assert resolve_user([susp], 3, tokens, lambda _: 0, {})["a"].tokens == ()
    assert reasons(resolve_user([susp], 3, tokens, lambda _: 0, {})["a"])[0] == "Suspended"
    plain = AllocationView("b", "ghost", "1", tokens=("t1",))
    g = resolve_user([plain], None, tokens, lambda _: 0, {})["b"]
    assert g.tokens == () and reasons(g)[0] == "UserNotFound"


def test_route_upstreams_are_ordered_by_priority_then_age_without_duplicates() -> None:
    allocs = [
        AllocationView("low", "u", "1", tokens=("t3", "t1"), priority=5),
        AllocationView("high", "u", "2", tokens=("t2", "t1"), priority=1),
    ]
    grants = {"low": Grant(("t3", "t1"), ()), "high": Grant(("t2", "t1"), ())}
    ups = route_upstreams(allocs, grants)
    assert [(u.name, u.priority) for u in ups] == [("t2", 1), ("t1", 1), ("t3", 5)]


def test_label_selector_expressions() -> None:
    labels = {"tier": "gold", "region": "eu"}
    assert matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "x"]}]}, labels)
    assert not matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, labels
    )
    assert matches({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
    assert not matches({"matchLabels": {"region": "us"}}, labels)
    assert matches({}, labels)
