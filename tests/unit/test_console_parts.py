"""The console's pure parts: projections of the custom resources, running daily sums, search and
paging, statistics, limits, CSV, GitOps detection, request validation, charts, translations and
the vendored assets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tokenpool_console import csv_export, gitops, i18n, pool_stats, queries
from tokenpool_console.api_models import AllocationCreate, TokenCreate, UserCreate
from tokenpool_console.callers import Caller
from tokenpool_console.login_sessions import SessionStore
from tokenpool_console.mirror import NamespacePool
from tokenpool_console.projections import token_row, user_row
from tokenpool_console.svg_charts import daily_bars
from tokenpool_console.tallies import Tally, last_days, usage_view
from tokenpool_console.throttle import Throttle

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console" / "tokenpool_console"
TODAY = "2026-11-26"


def day(date: str, requests: int, errors: int = 0) -> dict[str, Any]:
    return {
        "date": date,
        "requests": requests,
        "successes": requests - errors,
        "errors": errors,
        "promptTokens": 1,
        "completionTokens": 2,
    }


def user(name: str, days: list[dict[str, Any]] = (), rv: str = "1", **spec: Any) -> dict[str, Any]:
    usage = {
        "daily": list(days),
        "today": days[-1] if days else None,
        "total": {"requests": sum(d["requests"] for d in days)},
    }
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": rv,
            "labels": spec.pop("labels", {}),
        },
        "spec": spec,
        "status": {
            "usage": {k: v for k, v in usage.items() if v is not None},
            "allocatedTokens": spec.pop("allocated", 0),
        },
    }


def test_user_projection_reads_state_and_today_only_when_it_is_today() -> None:
    row = user_row(
        user("a", [day("2026-11-25", 5), day(TODAY, 2)], displayName="Ä <b>", email="a@x.io", suspended=True)
    )
    assert (
        row.state,
        row.display_name,
        row.usage.on(TODAY).requests,
        row.usage.on("2026-11-24").requests,
    ) == ("suspended", "Ä <b>", 2, 0)
    assert row.usage.since("2026-11-25").requests == 7
    stale = user_row(user("b", [day("2026-11-20", 3)]))
    assert stale.usage.on(TODAY) == Tally()
    pending = user_row(user("c", labels={"tokenpool.io/access-request": "pending"}, suspended=True))
    assert pending.state == "pending"
    broken = user_row(
        {"metadata": {"name": "d"}, "spec": {}, "status": {"usage": {"total": {"requests": -1}}}}
    )
    assert broken.usage == usage_view({})


def test_token_state_orders_suspended_notready_then_health() -> None:
    def token(**kw: Any) -> Any:
        status = {
            "conditions": [{"type": "Ready", "status": kw.pop("ready", "True")}],
            "health": kw.pop("health", {}),
        }
        return token_row(
            {"metadata": {"name": "t"}, "spec": {"endpoint": "https://x/", **kw}, "status": status}
        )

    assert token(suspended=True, ready="False").state == "Suspended"
    assert token(ready="False").state == "NotReady"
    assert (
        token(health={"state": "CoolingDown", "cooldownUntil": "2099-01-01T00:00:00Z"}).state == "CoolingDown"
    )
    assert token().state == "Healthy"


@pytest.mark.parametrize(
    ("metadata", "tool"),
    [
        ({"labels": {"argocd.argoproj.io/instance": "x"}}, "Argo CD"),
        ({"annotations": {"argocd.argoproj.io/tracking-id": "x"}}, "Argo CD"),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "x"}}, "Flux"),
        ({"managedFields": [{"manager": "helm-controller"}]}, "Flux"),
        ({"managedFields": [{"manager": "kubectl-client-side-apply"}], "labels": {"app": "x"}}, ""),
    ],
)
def test_gitops_detection(metadata: dict[str, Any], tool: str) -> None:
    assert gitops.managed_by(metadata) == tool


def test_change_to_commit_is_a_mergeable_manifest_fragment() -> None:
    text = gitops.change_to_commit(
        "tokenpool.io/v1alpha1", "PoolUser", "a", "ns", {"spec": {"tokenQuota": 5}}
    )
    assert yaml.safe_load(text) == {
        "apiVersion": "tokenpool.io/v1alpha1",
        "kind": "PoolUser",
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {"tokenQuota": 5},
    }


def test_running_daily_sums_equal_a_recount() -> None:
    pool = NamespacePool("ns")
    pool.put_user(user_row(user("a", [day("2026-11-25", 5), day(TODAY, 2)])))
    pool.put_user(user_row(user("b", [day(TODAY, 3, errors=1)])))
    pool.put_user(user_row(user("a", [day("2026-11-25", 5), day(TODAY, 4)], rv="2")))
    pool.delete_user("b")
    pool.put_user(user_row(user("c", [day("2026-11-24", 1)])))
    recount = NamespacePool("ns")
    recount.replace_users(list(pool.users.values()))
    assert {d: t for d, t in pool.daily.items() if t != Tally()} == recount.daily
    assert pool.daily[TODAY].requests == 4


def test_search_filters_sort_and_page_bounds() -> None:
    pool = NamespacePool("ns")
    for i in range(120):
        pool.put_user(
            user_row(
                user(
                    f"u{i:03d}",
                    [day(TODAY, i)],
                    displayName=f"Name {i}",
                    email=f"p{i}@corp.io",
                    role="Admin" if i % 50 == 0 else "User",
                )
            )
        )
    page = queries.users(pool, q="NAME 1", per_page=10)
    assert page.total == 31 and page.pages == 4 and page.items[0].name == "u001"
    assert queries.users(pool, q="p7@corp", per_page=10).total == 1
    assert [u.name for u in queries.users(pool, role="Admin").items] == ["u000", "u050", "u100"]
    assert queries.users(pool, sort="requests", per_page=2).items[0].name == "u119"
    last = queries.users(pool, page=99, per_page=50)
    assert (last.page, len(last.items)) == (3, 20)
    assert queries.users(pool, per_page=10_000).per_page == queries.MAX_PER_PAGE


def test_statistics_window_rankings_quota_and_cache() -> None:
    pool = NamespacePool("ns")
    pool.put_user(
        user_row(
            user(
                "busy",
                [day("2026-10-01", 999), day(TODAY, 9)],
                tokenQuota=2,
                limits={"requestsPerDay": 10},
                allocated=2,
            )
        )
    )
    pool.put_user(user_row(user("calm", [day("2026-11-25", 20)])))
    stats = pool_stats.compute(pool, TODAY, 7, default_quota=3, max_quota=10)
    assert [d for d, _ in stats.days] == last_days(TODAY, 7)
    assert stats.period.requests == 29, "a day outside the window does not count"
    assert [r.name for r in stats.top_users] == ["calm", "busy"]
    assert stats.quota["usersAtQuota"] == 1 and stats.quota["quota"] == 5
    assert stats.quota["nearDailyLimit"] == [{"name": "busy", "requestsToday": 9, "requestsPerDay": 10}]
    cache = pool_stats.StatsCache(3, 10)
    first = cache.get(pool, TODAY, 7)
    assert cache.get(pool, TODAY, 7) is first
    pool.put_user(user_row(user("new", [day(TODAY, 1)])))
    assert cache.get(pool, TODAY, 7) is first, "changes within the cache window reuse the figures"


def test_throttle_per_address_and_in_total() -> None:
    limit = Throttle(per_key=2, total=3, window_s=60)
    for _ in range(2):
        assert limit.retry_after("a") == 0
        limit.hit("a")
    assert limit.retry_after("a") > 0 and limit.retry_after("b") == 0
    limit.hit("b")
    assert limit.retry_after("c") > 0, "the total limit holds for new addresses too"


def test_sessions_expire_when_idle() -> None:
    store = SessionStore(idle_s=0.0, max_age_s=60, secure=True)
    session = store.create(Caller("pooluser", "a", "ns", "Admin"), "ns")
    assert store.cookie.startswith("__Host-")
    assert store.get(session.sid) is None and len(store) == 0


def test_csv_defuses_formulas_in_names() -> None:
    pool = NamespacePool("ns")
    pool.put_user(user_row(user("a", [day(TODAY, 1)], displayName="=cmd|' /C calc'!A0", email="@x")))
    text = "".join(csv_export.users(pool, TODAY, 7))
    assert "'=cmd" in text and ",'@x," in text and "\n=cmd" not in text


def test_credits_are_read_summed_without_drift_and_exported() -> None:
    """Priced days (a fraction on the wire) take the fast read like whole counts; the pool's
    daily sum of 0.1 + 0.2 is 0.3, and the CSV carries a credits column."""
    pool = NamespacePool("ns")
    pool.put_user(user_row(user("a", [{**day(TODAY, 1), "credits": 0.1}])))
    pool.put_user(user_row(user("b", [{**day(TODAY, 2), "credits": 0.2}])))
    pool.put_user(user_row(user("c", [day(TODAY, 3)])))
    assert pool.daily[TODAY].credits == 0.3 and pool.daily[TODAY].requests == 6
    assert usage_view({"usage": {"daily": [{**day(TODAY, 1), "credits": 0.25}]}}).on(TODAY).credits == 0.25
    header, *rows = "".join(csv_export.users(pool, TODAY, 7)).splitlines()
    columns = header.split(",")
    first = dict(zip(columns, rows[0].split(","), strict=True))
    assert first["today.credits"] == "0.1" and first["total.credits"] == "0"


def test_request_models_refuse_what_the_api_server_would() -> None:
    with pytest.raises(ValueError, match="email must look like"):
        UserCreate(name="a", email="not-an-address")
    with pytest.raises(ValueError):
        UserCreate(name="Bad_Name")
    with pytest.raises(ValueError, match="either tokens"):
        AllocationCreate(user="a", tokens=["t"], selector={"k": "v"}, count=1)
    with pytest.raises(ValueError, match="needs a count"):
        AllocationCreate(user="a", selector={"k": "v"})
    with pytest.raises(ValueError, match="valid Kubernetes label"):
        TokenCreate(name="t", endpoint="https://x.example/", credential="c", labels={"bad key": "v"})
    with pytest.raises(ValueError, match="one token without spaces"):
        TokenCreate(name="t", endpoint="https://x.example/", credential="two words")
    assert "credential" not in repr(TokenCreate(name="t", endpoint="https://x.example/", credential="s3cret"))
    for provider in ("Augment", "OpenAI", "Anthropic"):  # the contract's providers, no other
        assert TokenCreate(name="t", provider=provider, endpoint="https://x.example/", credential="c")
    with pytest.raises(ValueError):
        TokenCreate(name="t", provider="Gemini", endpoint="https://x.example/", credential="c")


def test_chart_text_is_escaped() -> None:
    svg = str(daily_bars([("<script>", Tally(3, 2, 1))], 'a "title" <b>'))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&#34;title&#34;" in svg


def test_every_page_text_has_a_chinese_translation() -> None:
    literal = re.compile(r"""\bt\((?:"([^"]+)"|'([^']+)')\)""")
    texts = {
        a or b
        for path in (CONSOLE / "templates").glob("*.html")
        for a, b in literal.findall(path.read_text())
    }
    handler = re.compile(r"""(?:message=|once\(request, \w+, |heading = )"([^"]+)\"""")
    texts |= {m for path in CONSOLE.glob("pages_*.py") for m in handler.findall(path.read_text())}
    texts = {t.replace("\\'", "'") for t in texts} | set(i18n.DYNAMIC)
    assert len(texts) > 150
    assert sorted(texts - i18n.ZH.keys()) == []


def test_pages_load_nothing_from_other_sites_and_vendored_files_match_their_pins() -> None:
    for template in (CONSOLE / "templates").glob("*.html"):
        assert not re.search(r"""(src|href)="(https?:)?//""", template.read_text()), template.name
    check = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "vendor-assets.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_a_kubernetes_session_ends_with_its_token() -> None:
    import base64
    import json
    import time

    from tokenpool_console.callers import Authenticator, jwt_expiry

    def jwt(claims: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"

    assert jwt_expiry(jwt({"exp": 1_900_000_000, "sub": "x"})) == 1_900_000_000
    assert jwt_expiry("opaque-token") is None and jwt_expiry("a.b.c") is None
    auth = Authenticator(mirror=None, kube=None, kubernetes_login=True, audiences=[])  # type: ignore[arg-type]
    live = Caller("kubernetes", "pat", expires_at=time.time() + 60)
    assert auth.current(live) is live
    assert auth.current(Caller("kubernetes", "pat", expires_at=time.time() - 1)) is None
