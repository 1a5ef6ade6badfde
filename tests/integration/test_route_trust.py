"""The proxy trusts only what the operator compiled: route objects made by anyone else are never
served and are deleted by the operator (with an Event); two users with one personal token are
both refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import kubernetes
import pytest

from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration


def _tokens(proxy: ProxyProcess, pt: str) -> httpx.Response:
    return httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {pt}"}, timeout=5)


def test_hand_made_route_objects_are_not_served_and_are_deleted(
    pool: Pool,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
    fake_upstream: FakeUpstream,
) -> None:
    operator_process(pool.ns)
    for name in ("t1", "t2", "t3"):
        pool.credential(f"{name}-cred", f"cred-{name}-{pool.ns}")
        pool.token(name, endpoint=fake_upstream.tenant(name))
    alice = pool.user("alice")
    pool.allocation("alice-t1", "alice", tokens=["t1"])
    wait_for(lambda: pool.upstream_names("alice") == ["t1"], timeout=30, what="alice's route")
    proxy = proxy_process(pool.ns)
    mine = "f" * 64  # the attacker's own personal token, whose hash they put in the objects
    route = {
        "user": "mallory",
        "tokenSha256": c.hash_personal_token(mine),
        "upstreams": [{"name": n, "priority": 1} for n in ("t1", "t2", "t3")],
    }
    # 1. The issue's reproduction: a ConfigMap labelled as a user route.
    pool.core.create_namespaced_config_map(
        pool.ns,
        kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(
                name="tokenpool-user-mallory", labels={c.LABEL_ROUTE: "user"}
            ),
            data={c.USER_ROUTE_KEY: json.dumps(route)},
        ),
    )
    # 2. A Secret shaped like the operator's, controlled by alice's PoolUser (her real uid).
    ref = kubernetes.client.V1OwnerReference(
        api_version=c.API_VERSION,
        kind=c.KIND_USER,
        name="alice",
        uid=alice["metadata"]["uid"],
        controller=True,
    )
    pool.core.create_namespaced_secret(
        pool.ns,
        kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(
                name="tokenpool-user-alice-2",
                labels={c.LABEL_ROUTE: "user", c.LABEL_MANAGED_BY: c.MANAGED_BY},
                owner_references=[ref],
            ),
            data={
                c.USER_ROUTE_KEY: base64.b64encode(json.dumps({**route, "user": "alice"}).encode()).decode()
            },
        ),
    )
    assert _tokens(proxy, mine).status_code == 401  # neither is served, at any moment
    for kind, name in (("configmap", "tokenpool-user-mallory"), ("secret", "tokenpool-user-alice-2")):
        read = (
            pool.core.read_namespaced_config_map if kind == "configmap" else pool.core.read_namespaced_secret
        )

        def gone(read: Any = read, name: str = name) -> bool:
            try:
                read(name, pool.ns)
            except kubernetes.client.ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, timeout=20, what=f"operator deleting {kind} {name}")
        events = pool.events(name)
        assert any(t == "Warning" and r == "UnownedRouteDeleted" for t, r, _ in events), events
    body = _tokens(proxy, mine)
    assert body.status_code == 401 and "cred-" not in body.text
    # The operator's own objects are untouched and still served.
    assert pool.upstream_names("alice") == ["t1"]
    pt = pool.personal_token("alice")
    assert [t["token"] for t in _tokens(proxy, pt).json()["tokens"]] == [f"cred-t1-{pool.ns}"]


def test_two_users_with_one_personal_token_are_both_refused(
    pool: Pool, operator_process: Callable[..., Any], proxy_process: Callable[..., ProxyProcess]
) -> None:
    operator_process(pool.ns)
    shared = "shared-byo-token-" + "9" * 20
    pool.credential("shared-pt", shared)
    pool.user("ann", personalTokenSecretRef={"name": "shared-pt"})
    pool.user("ben", personalTokenSecretRef={"name": "shared-pt"})
    proxy = proxy_process(pool.ns)
    for user in ("ann", "ben"):
        wait_for(
            lambda user=user: pool.reason(c.KIND_USER, user, "PersonalTokenReady") == "PersonalTokenConflict",
            timeout=20,
            what=f"{user} refused",
        )
    assert pool.user_route("ann") is None and pool.user_route("ben") is None
    assert _tokens(proxy, shared).status_code == 401
    message = pool.condition(c.KIND_USER, "ann", "PersonalTokenReady")["message"]
    assert "'ben'" in message and shared not in message
    # One changes its token: both are served again, each with their own.
    pool.credential("ben-pt", "bens-own-token-" + "8" * 20)
    pool.patch(c.KIND_USER, "ben", {"spec": {"personalTokenSecretRef": {"name": "ben-pt"}}})
    wait_for(lambda: _tokens(proxy, shared).status_code == 200, timeout=20, what="ann served again")
    wait_for(lambda: _tokens(proxy, "bens-own-token-" + "8" * 20).status_code == 200, timeout=20, what="ben")
