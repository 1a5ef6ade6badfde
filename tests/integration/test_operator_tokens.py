"""Personal tokens (stable, rotation, BYO) and UpstreamTokens (credential Secrets, health)."""

from __future__ import annotations

import json

import pytest

from tests.support.tokenpool_objects import GOOD_CREDENTIAL, Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
U, T = c.KIND_USER, c.KIND_UPSTREAM


def test_personal_token_survives_restarts_and_rotates_only_on_request(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns)
    pool.user("carol")
    first = wait_for(lambda: pool.personal_token("carol"), timeout=20, what="carol's token")
    op.restart()
    pool.patch(U, "carol", {"spec": {"displayName": "Carol"}})
    wait_for(lambda: pool.user_route("carol").display_name == "Carol", timeout=20, what="edit applied")
    assert pool.personal_token("carol") == first

    pool.patch(U, "carol", {"metadata": {"annotations": {c.ANNOTATION_ROTATE_PERSONAL_TOKEN: "r1"}}})
    second = wait_for(
        lambda: (t := pool.personal_token("carol")) != first and t, timeout=20, what="rotated token"
    )
    assert len(second) == 64
    wait_for(
        lambda: pool.user_route("carol").token_sha256 == c.hash_personal_token(second),
        timeout=10,
        what="route",
    )
    assert ("Normal", "TokenRotated") in [(t, r) for t, r, _ in pool.events("carol")]
    op.restart()
    op.wait_idle()
    assert pool.personal_token("carol") == second  # the same annotation value never rotates twice


def test_bring_your_own_token_is_used_as_given(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    legacy = "legacy-" + "ab12" * 10
    pool.credential("dave-migrated", legacy, key="pt")
    pool.user("dave", personalTokenSecretRef={"name": "dave-migrated", "key": "pt"})
    route = wait_for(lambda: pool.user_route("dave"), timeout=20, what="dave's route")
    assert route.token_sha256 == c.hash_personal_token(legacy)
    assert pool.secret(c.personal_token_secret_name("dave")) is None
    # The route is written before the status: wait for the status rather than race it.
    wait_for(
        lambda: (pool.get(U, "dave").get("status") or {}).get("personalTokenSecretName") == "dave-migrated",
        timeout=20,
        what="status names the brought Secret",
    )
    # Changing the brought Secret updates the route, without touching the PoolUser.
    pool.credential("dave-migrated", legacy + "x", key="pt")
    wait_for(
        lambda: pool.user_route("dave").token_sha256 == c.hash_personal_token(legacy + "x"),
        timeout=20,
        what="route follows the BYO Secret",
    )


def test_byo_secret_missing_is_reported_and_no_route_exists(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    pool.user("erin", personalTokenSecretRef={"name": "nowhere"})
    wait_for(lambda: pool.reason(U, "erin") == "PersonalTokenSecretNotFound", timeout=20, what="reason")
    assert pool.condition(U, "erin")["status"] == "False"
    assert pool.user_route("erin") is None


def test_upstream_token_compiles_and_missing_credential_heals(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns, log_format="json", log_level="DEBUG")
    pool.token("ut1", secret="ut1-cred", maxConcurrency=3, minIntervalSeconds=2)
    wait_for(
        lambda: pool.reason(T, "ut1") == "CredentialSecretNotFound", timeout=20, what="missing credential"
    )
    assert pool.condition(T, "ut1")["status"] == "False"
    assert pool.upstream_route("ut1") is None
    wait_for(  # the Event is posted after the status: wait for it rather than race it
        lambda: any(r == "CredentialSecretNotFound" for _, r, _ in pool.events("ut1")),
        timeout=10,
        what="Event",
    )

    pool.credential("ut1-cred", "has spaces in it")
    wait_for(lambda: pool.reason(T, "ut1") == "CredentialMalformed", timeout=20, what="malformed credential")
    assert pool.upstream_route("ut1") is None

    pool.credential("ut1-cred", f"  {GOOD_CREDENTIAL}\n")  # fixing the Secret heals it, no CR edit
    route = wait_for(lambda: pool.upstream_route("ut1"), timeout=20, what="compiled upstream")
    assert (route.token, route.max_concurrency, route.min_interval_seconds) == (GOOD_CREDENTIAL, 3, 2)
    assert (route.provider, route.endpoint, route.healthy) == (
        "Augment",
        "https://d1.api.augmentcode.com/",
        True,
    )
    wait_for(lambda: pool.reason(T, "ut1") == "Ready", timeout=10, what="Ready")
    compiled = pool.secret(c.upstream_route_name("ut1"))
    assert compiled.metadata.labels[c.LABEL_ROUTE] == c.ROUTE_UPSTREAM
    assert compiled.metadata.owner_references[0].uid == pool.get(T, "ut1")["metadata"]["uid"]
    status_and_events = str(pool.get(T, "ut1")["status"]) + str(pool.events("ut1"))
    assert GOOD_CREDENTIAL not in status_and_events and "has spaces" not in status_and_events

    pool.core.delete_namespaced_secret("ut1-cred", pool.ns)
    wait_for(lambda: pool.upstream_route("ut1") is None, timeout=20, what="compiled Secret removed")
    wait_for(lambda: pool.reason(T, "ut1") == "CredentialSecretNotFound", timeout=10, what="reason")
    log = op.log(5000)
    assert GOOD_CREDENTIAL not in log and "has spaces" not in log  # not even at DEBUG
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines)  # log_format=json: one object a line


def test_health_written_by_the_proxy_becomes_the_healthy_condition(pool: Pool, operator_process) -> None:
    operator_process(pool.ns)
    pool.credential("ut2-cred")
    pool.token("ut2", secret="ut2-cred", provider="OpenAI", endpoint="https://api.example.com/v1/")
    wait_for(lambda: pool.upstream_route("ut2"), timeout=20, what="compiled upstream")
    assert pool.upstream_route("ut2").endpoint == "https://api.example.com/v1"
    pool.patch_status(
        T, "ut2", {"health": {"state": "Unhealthy", "reason": "Unauthorized", "lastError": "Unauthorized"}}
    )
    wait_for(lambda: pool.reason(T, "ut2", "Healthy") == "Unauthorized", timeout=20, what="Healthy=False")
    assert pool.condition(T, "ut2", "Healthy")["status"] == "False"
    wait_for(lambda: not pool.upstream_route("ut2").healthy, timeout=10, what="route unhealthy")
    assert pool.upstream_route("ut2").health_reason == "Unauthorized"
    assert pool.get(T, "ut2")["status"]["health"]["state"] == "Unhealthy"  # the proxy's field is kept

    pool.patch_status(T, "ut2", {"health": None})  # how an admin clears it
    wait_for(lambda: pool.upstream_route("ut2").healthy, timeout=20, what="route healthy again")
    wait_for(lambda: pool.reason(T, "ut2", "Healthy") == "Healthy", timeout=10, what="Healthy=True")

    pool.patch(T, "ut2", {"spec": {"suspended": True}})
    wait_for(lambda: pool.upstream_route("ut2").suspended, timeout=20, what="suspended")
    wait_for(lambda: pool.reason(T, "ut2", "Healthy") == "Suspended", timeout=10, what="Healthy=False")
