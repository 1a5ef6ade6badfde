"""The console's defences, against the real API server with the operator running: CSRF, session
fixation, login brute force, XSS through names and descriptions, users on admin endpoints, an
admin of one namespace in another, GitOps-owned objects, and no token in URLs or logs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import kubernetes
import pytest

from tests.support.console_fixtures import ConsoleProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def site(
    namespace: str,
    pool: Pool,
    operator_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
) -> dict[str, Any]:
    operator_process(namespace)
    pool.user("boss", role="Admin")
    pool.user("alice", displayName=XSS)
    pool.credential("t1-cred")
    pool.token("t1", description=XSS)
    tokens = {
        n: wait_for(lambda n=n: pool.personal_token(n), 60, what=f"{n}'s token") for n in ("boss", "alice")
    }
    console = console_process(namespace)
    wait_for(lambda: console.client().login(tokens["boss"]).status_code == 200, 30, what="login works")
    return {"console": console, "tokens": tokens}


def test_writes_need_the_sessions_csrf_token_and_our_origin(site: dict[str, Any]) -> None:
    client = site["console"].client()
    assert client.login(site["tokens"]["boss"]).status_code == 200
    csrf = client.http.headers.pop("X-CSRF-Token")
    no_token = client.post("/api/admin/users/alice/suspend")
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]["message"]
    wrong = client.post("/api/admin/users/alice/suspend", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    page_form = client.post("/users/alice/suspend", data={"csrf_token": "nope"})
    assert page_form.status_code == 403
    cross = client.post(
        "/api/admin/users/alice/suspend", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]["message"]
    good = client.post("/api/admin/users/alice/suspend", headers={"X-CSRF-Token": csrf})
    assert good.status_code == 200 and good.json()["suspended"] is True
    form_ok = client.post("/users/alice/resume", data={"csrf_token": csrf})
    assert form_ok.status_code == 204


def test_a_session_id_planted_before_login_is_never_used(site: dict[str, Any]) -> None:
    console = site["console"]
    planted = "attacker-chosen-session-id-000000000000000"
    victim = httpx.Client(base_url=console.url, cookies={"tokenpool-console": planted})
    assert victim.get("/api/auth/whoami").status_code == 401
    response = victim.post("/api/auth/login", json={"token": site["tokens"]["boss"]})
    assert response.status_code == 200
    issued = response.cookies.get("tokenpool-console")
    assert issued and issued != planted
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    attacker = httpx.Client(base_url=console.url, cookies={"tokenpool-console": planted})
    assert attacker.get("/api/auth/whoami").status_code == 401
    # Logging in again replaces the session: the old id stops working.
    again = victim.post("/api/auth/login", json={"token": site["tokens"]["boss"]})
    old = httpx.Client(base_url=console.url, cookies={"tokenpool-console": issued})
    assert again.cookies.get("tokenpool-console") != issued
    assert old.get("/api/auth/whoami").status_code == 401
    # Logging out ends the session on the server.
    victim.cookies.set("tokenpool-console", again.cookies["tokenpool-console"])
    csrf = again.json()["csrfToken"]
    assert victim.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    replay = httpx.Client(
        base_url=console.url, cookies={"tokenpool-console": again.cookies["tokenpool-console"]}
    )
    assert replay.get("/api/auth/whoami").status_code == 401


def test_login_brute_force_is_stopped(
    namespace: str, site: dict[str, Any], console_process: Callable[..., ConsoleProcess]
) -> None:
    console = console_process(namespace, login_failures_per_address=5, login_window_seconds=600)
    client = console.client()
    answers = [client.login("0" * 64).status_code for _ in range(5)]
    assert answers == [401] * 5
    blocked = client.login("1" * 64)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "TooManyAttempts"
    # While blocked even the right token is refused, and bearer calls count the same.
    assert client.login(site["tokens"]["boss"]).status_code == 429
    assert client.bearer(site["tokens"]["boss"]).get("/api/auth/whoami").status_code == 429


def test_names_and_descriptions_cannot_inject_markup(site: dict[str, Any], pool: Pool) -> None:
    client = site["console"].client()
    assert client.login(site["tokens"]["boss"]).status_code == 200
    created = client.post(
        "/api/admin/users", json={"name": "mallory", "displayName": XSS, "email": "m@example.com"}
    )
    assert created.status_code == 201
    for path in (
        "/users",
        "/users/-/table?q=al",
        "/users/alice",
        "/users/mallory",
        "/tokens",
        "/stats",
        "/overview",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in client.get("/users/alice").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in client.get("/tokens").text
    pool.patch(c.KIND_USER, "mallory", {"spec": {"displayName": '=HYPERLINK("http://evil.example")'}})
    wait_for(lambda: "HYPERLINK" in client.get("/api/admin/users/mallory").text, 10, what="mirror sees it")
    csv = client.get("/api/admin/export/users.csv").text
    assert "'=HYPERLINK" in csv and ",=HYPERLINK" not in csv


def test_users_cannot_reach_admin_pages_or_endpoints(site: dict[str, Any]) -> None:
    client = site["console"].client()
    assert client.login(site["tokens"]["alice"]).status_code == 200
    for path in (
        "/api/admin/users",
        "/api/admin/stats",
        "/api/admin/invitations",
        "/users",
        "/stats",
        "/tokens",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
    assert client.post("/api/admin/users", json={"name": "eve2"}).status_code == 403
    assert client.post("/api/admin/users/boss/suspend").status_code == 403
    assert client.get("/me").status_code == 200


def test_an_admin_of_one_namespace_cannot_act_in_another(
    request: pytest.FixtureRequest,
    kube_api: kubernetes.client.ApiClient,
    operator_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
) -> None:
    spaces = [request.getfixturevalue("namespace")]
    other = f"{spaces[0][:50]}-b"
    kubernetes.client.CoreV1Api(kube_api).create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=other))
    )
    spaces.append(other)
    try:
        pools = [Pool(kube_api, ns) for ns in spaces]
        operator_process(",".join(spaces))
        pools[0].user("boss-a", role="Admin")
        pools[1].user("boss-b", role="Admin")
        pools[1].user("bob")
        token_a = wait_for(lambda: pools[0].personal_token("boss-a"), 60, what="boss-a's token")
        console = console_process(spaces)
        client = console.client()
        wait_for(lambda: client.login(token_a).status_code == 200, 30, what="login")
        assert client.get("/api/admin/users").json()["items"][0]["namespace"] == spaces[0]
        listing = client.get("/api/admin/users", params={"namespace": other})
        assert listing.status_code == 403 and "not" in listing.json()["error"]["message"]
        write = client.post("/api/admin/users/bob/suspend", params={"namespace": other})
        assert write.status_code == 403
        assert not pools[1].get(c.KIND_USER, "bob")["spec"].get("suspended")
        assert client.get("/api/admin/users", params={"namespace": "kube-system"}).status_code == 404
    finally:
        kubernetes.client.CoreV1Api(kube_api).delete_namespace(other)


def test_gitops_objects_are_read_only_with_the_change_to_commit(site: dict[str, Any], pool: Pool) -> None:
    pool.create(
        c.KIND_USER,
        "argo-user",
        {"email": "argo@example.com"},
        labels={"argocd.argoproj.io/instance": "tokenpool-users"},
    )
    client = site["console"].client()
    assert client.login(site["tokens"]["boss"]).status_code == 200
    wait_for(lambda: client.get("/api/admin/users/argo-user").status_code == 200, 10, what="mirror")
    assert client.get("/api/admin/users/argo-user").json()["user"]["managedBy"] == "Argo CD"
    refused = client.patch("/api/admin/users/argo-user", json={"tokenQuota": 5})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "ManagedByGitOps" and error["tool"] == "Argo CD"
    assert "kind: PoolUser" in error["change"] and "tokenQuota: 5" in error["change"]
    assert client.delete("/api/admin/users/argo-user").status_code == 409
    assert pool.get(c.KIND_USER, "argo-user")["spec"].get("tokenQuota") is None
    page = client.get("/users/argo-user").text
    assert "Managed by" in page and "Argo CD" in page


def test_sessions_end_when_the_token_is_rotated_or_the_user_suspended(
    site: dict[str, Any], pool: Pool
) -> None:
    admin, user = site["console"].client(), site["console"].client()
    assert admin.login(site["tokens"]["boss"]).status_code == 200
    assert user.login(site["tokens"]["alice"]).status_code == 200
    rotated = admin.post("/api/admin/users/alice/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["personalToken"]
    assert re.fullmatch(r"[0-9a-f]{64}", new) and new != site["tokens"]["alice"]
    wait_for(lambda: user.get("/api/me").status_code == 401, 10, what="old session ended")
    again = site["console"].client()
    wait_for(lambda: again.login(new).status_code == 200, 10, what="new token logs in")
    assert admin.post("/api/admin/users/alice/suspend").status_code == 200
    wait_for(lambda: again.get("/api/me").status_code == 401, 10, what="suspended user's session ended")


def test_no_token_in_urls_logs_or_cached_pages(site: dict[str, Any]) -> None:
    client = site["console"].client()
    assert client.login(site["tokens"]["boss"]).status_code == 200
    shown = client.post("/api/admin/users", json={"name": "carol"})
    assert shown.status_code == 201 and shown.headers["cache-control"] == "no-store"
    created = client.post(
        "/api/admin/tokens",
        json={
            "name": "t2",
            "endpoint": "https://d2.api.augmentcode.com/",
            "credential": "sk-upstream-secret-value-1",
        },
    )
    assert created.status_code == 201
    assert "sk-upstream-secret-value-1" not in created.text
    assert "sk-upstream-secret-value-1" not in client.get("/api/admin/tokens").text
    log = site["console"].log(2000)
    for secret in [*site["tokens"].values(), shown.json()["personalToken"], "sk-upstream-secret-value-1"]:
        assert secret not in log
    # A token in the query string is not a way in.
    anonymous = httpx.get(f"{site['console'].url}/api/admin/users", params={"token": site["tokens"]["boss"]})
    assert anonymous.status_code == 401
