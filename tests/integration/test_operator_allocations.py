"""TokenAllocations: quota, explicit names, selectors, unhealthy replacement, deletion."""

from __future__ import annotations

import pytest

from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
A, T, U = c.KIND_ALLOCATION, c.KIND_UPSTREAM, c.KIND_USER


def tokens(pool: Pool, *names: str, labels: dict[str, str] | None = None, **spec: object) -> None:
    for name in names:
        pool.credential(f"{name}-cred")
        pool.token(name, labels=labels, **spec)


def test_quota_refuses_newer_allocations_until_raised(pool: Pool, operator_process) -> None:
    operator_process(pool.ns, max_quota=5)
    tokens(pool, "t1", "t2", "t3")
    pool.user("alice", tokenQuota=2)
    pool.allocation("first", "alice", tokens=["t1", "t2"], priority=2)
    wait_for(lambda: pool.granted("first") == ["t1", "t2"], timeout=20, what="first granted")
    pool.allocation("second", "alice", tokens=["t3"], priority=1)
    wait_for(lambda: pool.reason(A, "second") == "QuotaExceeded", timeout=20, what="QuotaExceeded")
    assert pool.granted("second") == []
    assert pool.condition(A, "second", "WithinQuota")["status"] == "False"
    assert pool.reason(A, "first") == "Granted"
    assert pool.upstream_names("alice") == ["t1", "t2"]
    assert ("Warning", "QuotaExceeded") in [(t, r) for t, r, _ in pool.events("second")]

    pool.patch(U, "alice", {"spec": {"tokenQuota": 3}})  # no edit of the allocations
    wait_for(lambda: pool.granted("second") == ["t3"], timeout=20, what="second granted after raise")
    # Ordered by allocation priority: "second" (priority 1) first.
    wait_for(lambda: pool.upstream_names("alice") == ["t3", "t1", "t2"], timeout=10, what="route order")
    wait_for(lambda: pool.get(U, "alice")["status"].get("allocatedTokens") == 3, timeout=10, what="count")
    wait_for(lambda: pool.get(T, "t1")["status"].get("allocations") == 1, timeout=10, what="token count")

    pool.patch(U, "alice", {"spec": {"tokenQuota": 50}})  # above the operator maximum (5 here)
    wait_for(lambda: pool.reason(U, "alice", "QuotaWithinMaximum") == "QuotaAboveMaximum", timeout=20)
    assert pool.user_route("alice").token_quota == 5


def test_missing_user_and_token_are_reported_then_heal(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    pool.allocation("orphan", "nobody", tokens=["t9"])
    wait_for(lambda: pool.reason(A, "orphan") == "UserNotFound", timeout=20, what="UserNotFound")
    pool.user("nobody")
    wait_for(lambda: pool.reason(A, "orphan") == "TokenNotFound", timeout=20, what="TokenNotFound")
    tokens(pool, "t9")
    wait_for(lambda: pool.granted("orphan") == ["t9"], timeout=20, what="granted once the token exists")
    wait_for(lambda: pool.upstream_names("nobody") == ["t9"], timeout=10, what="route")

    pool.patch(A, "orphan", {"spec": {"suspended": True}})
    wait_for(lambda: pool.reason(A, "orphan") == "Suspended", timeout=20, what="suspended allocation")
    wait_for(lambda: pool.upstream_names("nobody") == [], timeout=10, what="route emptied")
    pool.patch(A, "orphan", {"spec": {"suspended": False}})
    wait_for(lambda: pool.upstream_names("nobody") == ["t9"], timeout=20, what="route back")

    pool.delete(A, "orphan")
    wait_for(lambda: pool.upstream_names("nobody") == [], timeout=20, what="route after delete")
    wait_for(
        lambda: pool.get(T, "t9")["status"].get("allocations") == 0, timeout=10, what="count after delete"
    )


def test_selector_picks_least_allocated_and_respects_max_allocations(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    shared = {"pool": "shared"}
    tokens(pool, "s1", "s2", "s3", labels=shared)
    tokens(pool, "solo", labels={"pool": "solo"}, maxAllocations=1)
    for u in ("u1", "u2", "u3"):
        pool.user(u)
    # s1 is busy (two explicit holders) before any selector runs.
    pool.allocation("u1-named", "u1", tokens=["s1"])
    pool.allocation("u2-named", "u2", tokens=["s1"])
    wait_for(lambda: pool.get(T, "s1")["status"].get("allocations") == 2, timeout=20, what="s1 busy")
    pool.allocation("u3-sel", "u3", selector={"matchLabels": shared}, count=2)
    wait_for(lambda: sorted(pool.granted("u3-sel")) == ["s2", "s3"], timeout=20, what="least allocated")

    pool.allocation("u1-solo", "u1", selector={"matchLabels": {"pool": "solo"}}, count=1)
    wait_for(lambda: pool.granted("u1-solo") == ["solo"], timeout=20, what="exclusive token granted")
    pool.allocation("u2-solo", "u2", selector={"matchLabels": {"pool": "solo"}}, count=1)
    wait_for(lambda: pool.reason(A, "u2-solo") == "InsufficientTokens", timeout=20, what="exclusive taken")
    assert pool.granted("u2-solo") == []
    pool.delete(A, "u1-solo")  # freeing the exclusive token hands it to the waiting allocation
    wait_for(lambda: pool.granted("u2-solo") == ["solo"], timeout=20, what="freed token re-granted")


def test_selector_replaces_a_token_that_becomes_unhealthy(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    tokens(pool, "h1", "h2", "h3", labels={"pool": "p"})
    pool.user("zed")
    pool.allocation("zed-sel", "zed", selector={"matchLabels": {"pool": "p"}}, count=2)
    picked = wait_for(lambda: (g := pool.granted("zed-sel")) and len(g) == 2 and g, timeout=20, what="picks")
    spare = ({"h1", "h2", "h3"} - set(picked)).pop()
    victim = picked[0]
    # What the proxy does when the upstream answers 401: it writes status.health.
    pool.patch_status(T, victim, {"health": {"state": "Unhealthy", "reason": "Unauthorized"}})
    wait_for(
        lambda: sorted(pool.granted("zed-sel")) == sorted([picked[1], spare]), timeout=20, what="replacement"
    )
    wait_for(lambda: victim not in pool.upstream_names("zed"), timeout=10, what="route without the victim")
    assert pool.reason(A, "zed-sel") == "Granted"


def test_grants_and_routes_survive_restart_and_resync_unchanged(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns, resync_seconds=1)
    tokens(pool, "r1", "r2", "r3", "r4", labels={"pool": "r"})
    for u in ("ann", "ben"):
        pool.user(u)
        pool.allocation(f"{u}-sel", u, selector={"matchLabels": {"pool": "r"}}, count=2)
    wait_for(
        lambda: all(len(pool.granted(f"{u}-sel")) == 2 for u in ("ann", "ben")), timeout=20, what="grants"
    )
    op.wait_idle()
    grants = {u: pool.granted(f"{u}-sel") for u in ("ann", "ben")}
    versions = {u: pool.secret(c.user_route_name(u)).metadata.resource_version for u in ("ann", "ben")}
    # Resyncs (every second here) re-reconcile everything: the processed count grows ...
    done = op.probe()["queue"]["processed"]
    wait_for(lambda: op.probe()["queue"]["processed"] >= done + 6, timeout=20, what="a resync round")
    op.restart()  # ... and a restart starts from the statuses: same picks, nothing rewritten.
    op.wait_idle(processed=6)
    assert {u: pool.granted(f"{u}-sel") for u in ("ann", "ben")} == grants
    assert {
        u: pool.secret(c.user_route_name(u)).metadata.resource_version for u in ("ann", "ben")
    } == versions
