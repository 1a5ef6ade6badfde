"""PoolUser → personal token Secret + compiled route, against the real API server and a real
operator process."""

from __future__ import annotations

import pytest

from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
U = c.KIND_USER


def test_user_route_create_update_suspend_and_owner_references(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns, log_level="DEBUG")
    pool.user("alice", role="Admin", displayName="Alice", limits={"requestsPerDay": 10})
    route = wait_for(lambda: pool.user_route("alice"), timeout=20, what="alice's route")
    token = pool.personal_token("alice")
    assert token is not None and len(token) == 64 and token == token.lower()
    int(token, 16)
    assert route.token_sha256 == c.hash_personal_token(token)
    assert token not in str(pool.secret(c.user_route_name("alice")).data)
    assert (route.role, route.display_name, route.limits.requests_per_day, route.suspended) == (
        "Admin",
        "Alice",
        10,
        False,
    )
    assert route.token_quota == 3  # the operator default

    user = pool.get(U, "alice")
    wait_for(lambda: pool.reason(U, "alice") == "Ready", timeout=10, what="alice Ready")
    status = pool.get(U, "alice")["status"]
    assert status["personalTokenSecretName"] == "alice-personal-token"
    assert status["observedGeneration"] == user["metadata"]["generation"]
    assert token not in str(status)

    cm = pool.secret(c.user_route_name("alice"))
    for obj in (cm, pool.secret("alice-personal-token")):
        (ref,) = obj.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == (U, "alice", user["metadata"]["uid"], True)
    assert cm.metadata.labels[c.LABEL_ROUTE] == c.ROUTE_USER
    assert cm.metadata.labels[c.LABEL_MANAGED_BY] == c.MANAGED_BY
    assert c.ANNOTATION_CONTENT_HASH in cm.metadata.annotations

    pool.patch(U, "alice", {"spec": {"suspended": True, "tokenQuota": 5}})
    wait_for(lambda: pool.user_route("alice").suspended, timeout=10, what="route says suspended")
    assert pool.user_route("alice").token_quota == 5
    assert pool.personal_token("alice") == token  # unrelated edits never regenerate it
    events = pool.events("alice")
    assert ("Normal", "TokenGenerated") in [(t, r) for t, r, _ in events]
    assert all(token not in m for *_, m in events)
    assert token not in op.log(5000)


def test_route_is_not_rewritten_when_nothing_changed(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns)
    pool.user("bob")
    wait_for(lambda: pool.user_route("bob"), timeout=20, what="bob's route")
    op.wait_idle()
    version = pool.secret(c.user_route_name("bob")).metadata.resource_version
    token = pool.personal_token("bob")

    op.restart()  # a restart re-reconciles everything: same content, so nothing is rewritten
    op.wait_idle()
    pool.patch(U, "bob", {"metadata": {"labels": {"team": "x"}}})  # no content change either
    op.wait_idle()
    assert pool.secret(c.user_route_name("bob")).metadata.resource_version == version
    assert pool.personal_token("bob") == token

    pool.patch(U, "bob", {"spec": {"displayName": "Bobby"}})
    wait_for(lambda: pool.user_route("bob").display_name == "Bobby", timeout=10, what="display name")
    assert pool.secret(c.user_route_name("bob")).metadata.resource_version != version


def test_hand_edited_or_deleted_compiled_objects_are_repaired(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    pool.user("fay")
    good = wait_for(lambda: pool.user_route("fay"), timeout=20, what="fay's route")
    name = c.user_route_name("fay")
    pool.core.patch_namespaced_secret(name, pool.ns, {"data": {c.USER_ROUTE_KEY: "e30="}})  # "{}"
    wait_for(lambda: pool.user_route("fay") == good, timeout=20, what="route content restored")
    pool.core.delete_namespaced_secret(name, pool.ns)
    wait_for(lambda: pool.user_route("fay") == good, timeout=20, what="route recreated")


def test_only_the_configured_namespaces_are_reconciled(pool: Pool, operator_process, kube_api) -> None:
    other = Pool(kube_api, f"{pool.ns[:50]}-other")
    pool.core.create_namespace({"metadata": {"name": other.ns}})
    try:
        op = operator_process(pool.ns)
        other.user("outsider")
        pool.user("insider")
        wait_for(lambda: pool.user_route("insider"), timeout=20, what="route in the watched namespace")
        op.wait_idle()
        assert other.user_route("outsider") is None and other.personal_token("outsider") is None
        assert "status" not in other.get(U, "outsider")
    finally:
        pool.core.delete_namespace(other.ns)
