"""The console's admin API over the real API server with the operator: upstream tokens and their
credential Secrets, allocations (one and bulk), statistics from status, search and paging, and
joining the pool."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.console_fixtures import ConsoleClient, ConsoleProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c
from tokenpool.contract.status_fields import utc_date

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(
    namespace: str,
    pool: Pool,
    operator_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
) -> ConsoleClient:
    operator_process(namespace)
    pool.user("boss", role="Admin", tokenQuota=5)
    token = wait_for(lambda: pool.personal_token("boss"), 60, what="boss's token")
    client = console_process(namespace, join="open").client()
    wait_for(lambda: client.login(token).status_code == 200, 30, what="login")
    return client


def test_upstream_token_with_its_secret_allocations_and_actions(admin: ConsoleClient, pool: Pool) -> None:
    for name in ("u1", "u2", "u3"):
        pool.user(name)
    body = {
        "name": "acct-1",
        "endpoint": "https://d5.api.augmentcode.com/",
        "credential": "  access-token-value-1  ",
        "labels": {"tokenpool.io/pool": "shared"},
        "maxConcurrency": 2,
        "description": "first account",
    }
    created = admin.post("/api/admin/tokens", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["credentialSecret"] == "acct-1-credential"
    secret = pool.secret("acct-1-credential")
    assert secret is not None and pool.secret_value("acct-1-credential") == "access-token-value-1"
    token_uid = pool.get(c.KIND_UPSTREAM, "acct-1")["metadata"]["uid"]
    assert [o.uid for o in secret.metadata.owner_references] == [token_uid]
    wait_for(lambda: pool.reason(c.KIND_UPSTREAM, "acct-1") == "Ready", 30, what="token Ready")
    assert admin.post("/api/admin/tokens", json=body).status_code == 409
    bad = admin.post("/api/admin/tokens", json={**body, "name": "acct-2", "endpoint": "http://example.com/"})
    assert bad.status_code == 422 and "https" in bad.json()["error"]["message"]
    assert pool.secret("acct-2-credential") is None, "a refused token leaves no Secret behind"

    wait_for(lambda: admin.get("/api/admin/users/u3").status_code == 200, 10, what="mirror has users")
    one = admin.post(
        "/api/admin/allocations", json={"user": "u1", "selector": {"tokenpool.io/pool": "shared"}, "count": 1}
    )
    assert one.status_code == 201, one.text
    bulk = admin.post(
        "/api/admin/allocations/bulk", json={"users": ["u2", "u3", "ghost"], "tokens": ["acct-1"]}
    )
    assert bulk.status_code == 201
    assert len(bulk.json()["created"]) == 2 and bulk.json()["failed"] == [
        {"user": "ghost", "message": "no such PoolUser"}
    ]
    neither = admin.post(
        "/api/admin/allocations", json={"user": "u1", "tokens": ["acct-1"], "selector": {"a": "b"}}
    )
    assert neither.status_code == 422

    def granted() -> bool:
        items = admin.get("/api/admin/allocations", params={"q": "u"}).json()["items"]
        return len(items) == 3 and all(a["granted"] == ["acct-1"] for a in items)

    wait_for(granted, 30, what="the operator granted all three")
    assert admin.get("/api/admin/users/u1").json()["user"]["allocatedTokens"] == 1

    assert admin.post("/api/admin/tokens/acct-1/check").status_code == 202
    annotations = pool.get(c.KIND_UPSTREAM, "acct-1")["metadata"]["annotations"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", annotations[c.ANNOTATION_CHECK_NOW])
    assert admin.post("/api/admin/tokens/acct-1/suspend").json()["suspended"] is True
    wait_for(lambda: pool.reason(c.KIND_UPSTREAM, "acct-1", "Healthy") == "Suspended", 30, what="suspended")
    assert admin.get("/api/admin/tokens", params={"state": "Suspended"}).json()["total"] == 1
    assert admin.delete("/api/admin/tokens/acct-1").status_code == 204
    assert admin.get("/api/admin/tokens/acct-1").status_code == 404


def _usage(
    days: dict[str, tuple[int, int, int]], by_upstream: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    daily = [
        {
            "date": d,
            "requests": r,
            "successes": s,
            "errors": e,
            "promptTokens": 10 * r,
            "completionTokens": 20 * r,
        }
        for d, (r, s, e) in sorted(days.items())
    ]
    total = {
        k: sum(x[k] for x in daily)
        for k in ("requests", "successes", "errors", "promptTokens", "completionTokens")
    }
    usage: dict[str, Any] = {
        "total": total,
        "daily": daily,
        "today": {**daily[-1]},
        "lastUsedAt": f"{daily[-1]['date']}T10:00:00Z",
    }
    if by_upstream is not None:
        usage["todayByUpstream"] = by_upstream
    return usage


def test_statistics_come_from_the_daily_figures_in_status(admin: ConsoleClient, pool: Pool) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    today, yesterday, old = (
        utc_date(now),
        utc_date(now - timedelta(days=1)),
        utc_date(now - timedelta(days=40)),
    )
    pool.user("heavy", limits={"requestsPerDay": 10})
    pool.user("light")
    pool.credential("t-cred")
    pool.token("t-a", secret="t-cred")
    pool.token("t-b", secret="t-cred")
    wait_for(lambda: pool.reason(c.KIND_USER, "light") == "Ready", 30, what="users Ready")
    pool.patch_status(c.KIND_USER, "heavy", {"usage": _usage({yesterday: (30, 28, 2), today: (9, 9, 0)})})
    pool.patch_status(c.KIND_USER, "light", {"usage": _usage({old: (100, 100, 0), today: (1, 0, 1)})})
    pool.patch_status(
        c.KIND_UPSTREAM,
        "t-a",
        {"usage": _usage({today: (8, 8, 0)}), "health": {"state": "Unhealthy", "reason": "Unauthorized"}},
    )
    pool.patch_status(
        c.KIND_UPSTREAM,
        "t-b",
        {
            "usage": _usage({today: (2, 1, 1)}),
            "health": {
                "state": "CoolingDown",
                "reason": "RateLimited",
                "cooldownUntil": "2099-01-01T00:00:00Z",
            },
        },
    )

    def stats() -> dict[str, Any]:
        body: dict[str, Any] = admin.get("/api/admin/stats", params={"days": 30}).json()
        return body if body["period"]["requests"] == 40 else {}

    s = wait_for(stats, 15, what="the mirror sees the status")
    assert s["today"]["requests"] == 10 and s["today"]["successes"] == 9
    assert s["daily"][-2] == {
        "date": yesterday,
        "requests": 30,
        "successes": 28,
        "errors": 2,
        "promptTokens": 300,
        "completionTokens": 600,
        "credits": 0,
    }
    assert len(s["daily"]) == 30 and s["period"]["successRate"] == pytest.approx(37 / 40)
    assert [u["name"] for u in s["topUsers"]] == ["heavy", "light"], (
        "40-day-old figures are outside the window"
    )
    assert [t["name"] for t in s["topTokens"]] == ["t-a", "t-b"]
    assert s["tokenHealth"]["Unhealthy"] == 1 and s["tokenHealth"]["CoolingDown"] == 1
    assert s["quota"]["nearDailyLimit"] == [{"name": "heavy", "requestsToday": 9, "requestsPerDay": 10}]
    token = admin.get("/api/admin/tokens/t-b").json()["token"]
    assert token["health"]["restsUntil"] == "2099-01-01T00:00:00Z" and token["state"] == "CoolingDown"
    daily_csv = admin.get("/api/admin/export/daily.csv", params={"days": 7}).text.splitlines()
    assert daily_csv[0] == "date,scope,name,requests,successes,errors,promptTokens,completionTokens,credits"
    assert f"{yesterday},user,heavy,30,28,2,300,600,0" in daily_csv
    assert f"{today},pool,,10,9,1,100,200,0" in daily_csv
    assert admin.get("/api/admin/stats", params={"days": 32}).status_code == 422


def test_search_filter_and_paging(admin: ConsoleClient, pool: Pool) -> None:
    for i in range(60):
        pool.user(f"member-{i:02d}", displayName=f"Member {i}", role="Admin" if i % 20 == 0 else "User")
    wait_for(
        lambda: admin.get("/api/admin/users", params={"q": "member"}).json()["total"] == 60, 20, what="mirror"
    )
    first = admin.get("/api/admin/users", params={"q": "MEMBER", "perPage": 25}).json()
    assert (first["total"], first["pages"], len(first["items"])) == (60, 3, 25)
    last = admin.get("/api/admin/users", params={"q": "member", "perPage": 25, "page": 3}).json()
    assert [u["name"] for u in last["items"]][-1] == "member-59" and len(last["items"]) == 10
    admins = admin.get("/api/admin/users", params={"q": "member", "role": "Admin"}).json()
    assert [u["name"] for u in admins["items"]] == ["member-00", "member-20", "member-40"]
    by_mail = admin.get("/api/admin/users", params={"q": "member-07@example"}).json()
    assert [u["name"] for u in by_mail["items"]] == ["member-07"]
    assert admin.get("/api/admin/users", params={"perPage": 1000}).status_code == 422
    table = admin.get("/users/-/table", params={"q": "member", "page": "2"}).text
    assert "member-50" in table and "member-49" not in table and "Page 2 / 2" in table


def test_joining_the_pool(
    admin: ConsoleClient, pool: Pool, namespace: str, console_process: Callable[..., ConsoleProcess]
) -> None:
    visitor = admin.__class__(admin.http.base_url.__str__())
    asked = visitor.post("/api/join", json={"name": "Dora Explorer", "email": "dora@example.com"})
    assert asked.status_code == 202
    request, claim = asked.json()["request"], asked.json()["claim"]
    assert request.startswith("dora-")
    twin = visitor.post("/api/join", json={"name": "Dora Explorer", "email": "dora@example.com"})
    assert twin.status_code == 202 and twin.json()["request"] != request, "no way to tell a name is taken"
    pending = pool.get(c.KIND_USER, request)
    assert pending["spec"]["suspended"] is True
    assert pending["metadata"]["labels"]["tokenpool.io/access-request"] == "pending"
    assert (
        visitor.post("/api/join/claim", json={"request": request, "claim": claim}).json()["status"]
        == "pending"
    )
    assert (
        visitor.post("/api/join/claim", json={"request": request, "claim": "x" * 32}).json()["status"]
        == "unknown"
    )
    assert (
        visitor.post("/api/join/claim", json={"request": "nobody-here", "claim": claim}).json()["status"]
        == "unknown"
    )

    wait_for(
        lambda: admin.get("/api/admin/users", params={"state": "pending"}).json()["total"] == 2,
        10,
        what="mirror",
    )
    assert admin.post(f"/api/admin/users/{request}/approve").status_code == 200
    assert admin.post(f"/api/admin/users/{twin.json()['request']}/reject").status_code == 204
    claimed = wait_for(
        lambda: (
            (r := visitor.post("/api/join/claim", json={"request": request, "claim": claim}).json())["status"]
            == "approved"
            and r
        ),
        30,
        what="approved claim",
    )
    token = claimed["personalToken"]
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert visitor.post("/api/join/claim", json={"request": request, "claim": claim}).json() == {
        "status": "unknown",
        "personalToken": None,
    }
    rejected = visitor.post(
        "/api/join/claim", json={"request": twin.json()["request"], "claim": twin.json()["claim"]}
    )
    assert rejected.json()["status"] == "unknown"
    me = visitor.__class__(str(visitor.http.base_url))
    wait_for(lambda: me.login(token).status_code == 200, 20, what="the new user logs in")
    assert me.get("/api/me").json()["user"]["displayName"] == "Dora Explorer"


def test_invitations_and_join_limits(
    namespace: str, pool: Pool, admin: ConsoleClient, console_process: Callable[..., ConsoleProcess]
) -> None:
    strict = console_process(namespace, join="invitation", join_per_address_per_hour=3)
    boss = strict.client()
    assert boss.login(pool.personal_token("boss") or "").status_code == 200
    visitor = strict.client()
    assert visitor.post("/api/join", json={"name": "Eve", "email": "eve@example.com"}).status_code == 422
    code = boss.post("/api/admin/invitations", json={"uses": 1, "note": "for Finn"}).json()["invitation"]
    listed = boss.get("/api/admin/invitations").json()
    assert [i["note"] for i in listed] == ["for Finn"] and code not in str(listed)
    ok = visitor.post("/api/join", json={"name": "Finn", "email": "finn@example.com", "invitation": code})
    assert ok.status_code == 202
    invited_by = pool.get(c.KIND_USER, ok.json()["request"])["metadata"]["annotations"][
        "tokenpool.io/invited-by"
    ]
    assert "boss" in invited_by
    used = visitor.post("/api/join", json={"name": "Gil", "email": "gil@example.com", "invitation": code})
    assert used.status_code == 422, "an invitation for one use works once"
    limited = visitor.post("/api/join", json={"name": "Hal", "email": "hal@example.com", "invitation": code})
    assert limited.status_code == 429
    off = console_process(namespace).client()
    assert off.post("/api/join", json={"name": "Ivy", "email": "ivy@example.com"}).status_code == 404
