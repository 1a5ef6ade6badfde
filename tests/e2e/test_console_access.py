"""Who may do what in the console, against the real API server, with the chart's RBAC: the console
runs as the chart's console ServiceAccount; Kubernetes identities are ServiceAccounts bound (or
not) to the chart's admin/viewer ClusterRoles; pool users log in with their personal tokens.

Every kind of caller tries every action; the table of answers is printed and saved as an
artifact (.artifacts/console/access-matrix.md). Impersonation is proven by the API server
itself refusing a write the console let through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
import pytest

from tests.support.artifacts import artifact_dir
from tests.support.console_fixtures import ConsoleClient, ConsoleProcess
from tests.support.kube_identities import bind, can, service_account_token, unbind
from tests.support.rbac import Identities
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CALLERS = ["anonymous", "bad token", "pool user", "pool admin", "k8s: no rights", "k8s: viewer", "k8s: admin"]
DESTRUCTIVE = ("edit user", "suspend user", "rotate user's token", "delete user", "allocate")


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    path: str  # {victim} and {me} are filled in per caller
    body: dict[str, Any] | None = None


ACTIONS = [
    Action("list users", "GET", "/api/admin/users?q=v-"),
    Action("read a user", "GET", "/api/admin/users/alice"),
    Action("statistics", "GET", "/api/admin/stats"),
    Action("CSV export", "GET", "/api/admin/export/users.csv"),
    Action("list upstream tokens", "GET", "/api/admin/tokens"),
    Action("create user", "POST", "/api/admin/users", {"name": "new-{me}", "displayName": "New"}),
    Action("edit user", "PATCH", "/api/admin/users/{victim}", {"tokenQuota": 2}),
    Action("suspend user", "POST", "/api/admin/users/{victim}/suspend"),
    Action("rotate user's token", "POST", "/api/admin/users/{victim}/rotate"),
    Action("delete user", "DELETE", "/api/admin/users/{victim}"),
    Action(
        "add upstream token",
        "POST",
        "/api/admin/tokens",
        {
            "name": "up-{me}",
            "endpoint": "https://d9.api.augmentcode.com/",
            "credential": "cred-{me}-0123456789",
        },
    ),
    Action("sign in an account (start)", "POST", "/api/admin/tokens/oauth/start"),
    Action("check token now", "POST", "/api/admin/tokens/t1/check"),
    Action("allocate", "POST", "/api/admin/allocations", {"user": "{victim}", "tokens": ["t1"]}),
    Action("invitation code", "POST", "/api/admin/invitations", {"uses": 1}),
    Action("own account", "GET", "/api/me"),
    Action("rotate own token", "POST", "/api/me/rotate"),
]
READS = {"list users", "read a user", "statistics", "CSV export", "list upstream tokens"}
OWN = {"own account", "rotate own token"}


def expected(caller: str, action: str) -> int:
    if caller in ("anonymous", "bad token"):
        return 401
    if action in OWN:
        return 404 if caller.startswith("k8s") else 200
    if caller in ("pool user", "k8s: no rights"):
        return 403
    if caller == "k8s: viewer":
        return 200 if action in READS else 403
    return 200


def ok(status: int) -> int:
    """2xx answers count as 200 in the table (201 created, 202 accepted, 204 deleted)."""
    return 200 if 200 <= status < 300 else status


def _slug(caller: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in caller).strip("-").replace("--", "-")


def _fill(value: Any, me: str, victim: str) -> Any:
    if isinstance(value, str):
        return value.replace("{me}", me).replace("{victim}", victim)
    if isinstance(value, list):
        return [_fill(v, me, victim) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, me, victim) for k, v in value.items()}
    return value


@pytest.fixture
def world(
    namespace: str,
    pool: Pool,
    chart_rbac: Identities,
    kube_api: kubernetes.client.ApiClient,
    operator_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
    sa_kubeconfig: Callable[[str, str], str],
) -> dict[str, Any]:
    operator_process(namespace)
    pool.user("boss", role="Admin")
    pool.user("alice")
    pool.credential("t1-cred")
    pool.token("t1")
    for i, _ in enumerate(CALLERS):
        for j, _ in enumerate(DESTRUCTIVE):
            pool.user(f"v-{i}-{j}")
    tokens = {
        n: wait_for(lambda n=n: pool.personal_token(n), 60, what=f"{n}'s token") for n in ("boss", "alice")
    }
    k8s = {}
    for who, role in (
        ("k8s-none", None),
        ("k8s-viewer", chart_rbac.pool_viewer_role),
        ("k8s-admin", chart_rbac.pool_admin_role),
    ):
        k8s[who] = service_account_token(kube_api, namespace, who)
        if role:
            bind(kube_api, namespace, who, role)
    # The "bad token" caller fails on purpose: lift the login-failure limit (tested on its own).
    console = console_process(
        namespace,
        kubeconfig=sa_kubeconfig(namespace, chart_rbac.console),
        login_failures_per_address=10_000,
        login_failures_total=10_000,
    )
    wait_for(lambda: console.client().login(tokens["boss"]).status_code == 200, 30, what="boss can log in")
    return {"console": console, "tokens": tokens, "k8s": k8s}


def _client(world: dict[str, Any], caller: str) -> ConsoleClient:
    client: ConsoleClient = world["console"].client()
    if caller == "bad token":
        client.bearer("f" * 64)
    elif caller in ("pool user", "pool admin"):
        token = world["tokens"]["alice" if caller == "pool user" else "boss"]
        assert client.login(token).status_code == 200
    elif caller.startswith("k8s"):
        client.bearer(world["k8s"]["k8s-" + caller.split(": ")[1].replace("no rights", "none")])
    return client


def test_who_may_do_what(world: dict[str, Any], namespace: str) -> None:
    rows: dict[str, dict[str, int]] = {}
    mismatches = []
    for i, caller in enumerate(CALLERS):
        client = _client(world, caller)
        me = _slug(caller)
        rows[caller] = {}
        for action in ACTIONS:
            victim = f"v-{i}-{DESTRUCTIVE.index(action.name)}" if action.name in DESTRUCTIVE else ""
            path = _fill(action.path, me, victim)
            kwargs = {"json": _fill(action.body, me, victim)} if action.body is not None else {}
            response = client.http.request(action.method, path, **kwargs)
            got = ok(response.status_code)
            rows[caller][action.name] = got
            if got != expected(caller, action.name):
                mismatches.append(f"{caller} / {action.name}: {response.status_code} {response.text[:300]}")
            if got >= 400:
                assert "error" in response.json(), response.text  # the documented shape, never a traceback
    table = _markdown(rows)
    print("\n" + table)
    (artifact_dir("console") / "access-matrix.md").write_text(table)
    assert not mismatches, "\n".join(mismatches)


def _markdown(rows: dict[str, dict[str, int]]) -> str:
    names = [a.name for a in ACTIONS]
    lines = ["| action | " + " | ".join(CALLERS) + " |", "|---" * (len(CALLERS) + 1) + "|"]
    for name in names:
        cells = [("✔" if rows[c][name] == 200 else str(rows[c][name])) for c in CALLERS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def test_writes_are_made_as_the_person(
    world: dict[str, Any],
    namespace: str,
    pool: Pool,
    kube_api: kubernetes.client.ApiClient,
    chart_rbac: Identities,
    console_process: Callable[..., ConsoleProcess],
    sa_kubeconfig: Callable[[str, str], str],
) -> None:
    """The console's own ServiceAccount may patch PoolUsers, yet a Kubernetes identity whose
    RoleBinding was just removed is refused by the API server itself: the write was made while
    impersonating that identity. (The console's access review still had the old answer cached.)"""
    console = console_process(
        namespace, kubeconfig=sa_kubeconfig(namespace, chart_rbac.console), access_review_cache_seconds=120
    )
    token = service_account_token(kube_api, namespace, "k8s-leaver")
    binding = bind(kube_api, namespace, "k8s-leaver", chart_rbac.pool_admin_role)
    user = f"system:serviceaccount:{namespace}:k8s-leaver"
    wait_for(
        lambda: can(kube_api, user, namespace, "patch", "poolusers", c.GROUP), 20, what="binding effective"
    )
    client = console.client().bearer(token)
    first = client.post("/api/admin/users/v-0-0/suspend")
    assert first.status_code == 200, first.text
    unbind(kube_api, namespace, binding)
    wait_for(
        lambda: not can(kube_api, user, namespace, "patch", "poolusers", c.GROUP), 20, what="binding gone"
    )
    started = time.monotonic()
    second = client.post("/api/admin/users/v-0-0/resume")
    print(f"refused after {time.monotonic() - started:.2f}s: {second.text}")
    assert second.status_code == 403
    message = second.json()["error"]["message"]
    assert message.startswith("the Kubernetes API refused"), message
    assert user in message and "poolusers" in message, message
    assert pool.get(c.KIND_USER, "v-0-0")["spec"]["suspended"] is True, "the refused write changed nothing"
    # Proof the other way round: what the console's own ServiceAccount may do is irrelevant.
    console_sa = f"system:serviceaccount:{namespace}:{chart_rbac.console}"
    assert can(kube_api, console_sa, namespace, "patch", "poolusers", c.GROUP)


def test_pool_admin_writes_are_recorded_as_events(world: dict[str, Any], pool: Pool) -> None:
    client = _client(world, "pool admin")
    assert client.post("/api/admin/users/v-1-1/suspend").status_code == 200
    events = wait_for(lambda: [e for e in pool.events("v-1-1") if e[1] == "UserSuspended"], 10, what="event")
    assert "by PoolUser" in events[0][2] and "/boss (Admin)" in events[0][2], events
