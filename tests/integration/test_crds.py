"""The CRDs as the API server enforces them: every CEL rule and enum rejects a bad manifest
with the expected message, and defaults are filled in."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.support.tokenpool_objects import Pool
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
A, T, U = c.KIND_ALLOCATION, c.KIND_UPSTREAM, c.KIND_USER
REF = {"name": "cred"}
AUGMENT = "https://d5.api.augmentcode.com/"


def rejected(pool: Pool, kind: str, spec: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        pool.create(kind, "bad", spec)
    assert info.value.status == 422, info.value.body
    return str(info.value.body)


BAD = [
    (U, {"email": "not-an-email"}, "email must look like name@example.com"),
    (U, {"role": "Root"}, 'Unsupported value: \\"Root\\"'),
    (U, {"tokenQuota": -1}, "should be greater than or equal to 0"),
    (U, {"limits": {"requestsPerDay": -5}}, "should be greater than or equal to 0"),
    (
        T,
        {"provider": "Claude", "endpoint": AUGMENT, "credentialSecretRef": REF},
        'Unsupported value: \\"Claude\\"',
    ),
    (
        T,
        {"endpoint": "https://d5.api.augmentcode.com", "credentialSecretRef": REF},
        "an Augment endpoint is the tenant URL and must end with '/'",
    ),
    (
        T,
        {"endpoint": "http://d5.api.augmentcode.com/", "credentialSecretRef": REF},
        "endpoint must use https (plain http is only allowed for localhost)",
    ),
    (
        T,
        {"endpoint": "ftp://x/", "credentialSecretRef": REF},
        "endpoint must be an absolute http(s) URL without query or fragment",
    ),
    (T, {"endpoint": AUGMENT}, "spec.credentialSecretRef: Required value"),
    (T, {"endpoint": AUGMENT, "credentialSecretRef": REF, "maxConcurrency": 0}, "greater than or equal to 1"),
    (A, {"user": "u"}, "exactly one of tokens or selector must be set"),
    (
        A,
        {"user": "u", "tokens": ["a"], "selector": {"matchLabels": {"a": "b"}}, "count": 1},
        "exactly one of tokens or selector must be set",
    ),
    (A, {"user": "u", "tokens": []}, "tokens must name at least one UpstreamToken"),
    (A, {"user": "u", "selector": {"matchLabels": {"a": "b"}}}, "count is required with selector"),
    (A, {"user": "u", "tokens": ["a"], "count": 1}, "count is only allowed with selector"),
    (A, {"user": "u", "selector": {}, "count": 0}, "count must be at least 1"),
    (
        A,
        {"user": "u", "selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}, "count": 1},
        "values must be non-empty for In and NotIn, and absent for Exists and DoesNotExist",
    ),
    (
        A,
        {
            "user": "u",
            "selector": {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]},
            "count": 1,
        },
        "values must be non-empty for In and NotIn, and absent for Exists and DoesNotExist",
    ),
    (
        A,
        {"user": "u", "selector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}, "count": 1},
        'Unsupported value: \\"Near\\"',
    ),
    (A, {"user": "u", "tokens": ["a"], "priority": 5000}, "less than or equal to 1000"),
]


@pytest.mark.parametrize(("kind", "spec", "message"), BAD, ids=[f"{k}-{m[:40]}" for k, _, m in BAD])
def test_bad_manifests_are_rejected_with_a_clear_message(
    pool: Pool, kind: str, spec: dict, message: str
) -> None:
    assert message in rejected(pool, kind, spec)


def test_defaults_and_accepted_shapes(pool: Pool) -> None:
    user = pool.create(U, "ok-user", {})
    assert user["spec"]["role"] == "User" and user["spec"]["suspended"] is False
    assert "tokenQuota" not in user["spec"]  # the operator applies its configured default
    tok = pool.create(T, "ok-local", {"endpoint": "http://127.0.0.1:8080/t1/", "credentialSecretRef": REF})
    assert tok["spec"]["provider"] == "Augment"
    assert tok["spec"]["credentialSecretRef"]["key"] == "token"
    assert (
        tok["spec"]["maxConcurrency"],
        tok["spec"]["minIntervalSeconds"],
        tok["spec"]["maxAllocations"],
    ) == (
        1,
        0,
        0,
    )
    pool.create(
        T,
        "ok-openai",
        {"provider": "OpenAI", "endpoint": "https://api.example.com/v1", "credentialSecretRef": REF},
    )
    pool.create(
        T,
        "ok-anthropic",
        {"provider": "Anthropic", "endpoint": "https://api.anthropic.com", "credentialSecretRef": REF},
    )
    alloc = pool.create(A, "ok-alloc", {"user": "ok-user", "tokens": ["ok-local"]})
    assert alloc["spec"]["priority"] == 1


def test_allocation_user_is_immutable(pool: Pool) -> None:
    pool.create(A, "fixed", {"user": "someone", "tokens": ["x"]})
    with pytest.raises(ApiException) as info:
        pool.patch(A, "fixed", {"spec": {"user": "someone-else"}})
    assert info.value.status == 422
    assert "user cannot be changed; create a new allocation" in str(info.value.body)


def test_status_fields_of_both_writers_are_kept(pool: Pool) -> None:
    """The proxy's usage/health and the operator's conditions survive the schema (no pruning)."""
    pool.create(T, "st", {"endpoint": AUGMENT, "credentialSecretRef": REF})
    health = {"state": "CoolingDown", "reason": "RateLimited", "cooldownUntil": "2026-11-26T00:00:00Z"}
    usage = {"total": {"requests": 3, "promptTokens": 10}, "daily": [{"date": "2026-11-26", "requests": 3}]}
    status = pool.patch_status(T, "st", {"health": health, "usage": usage, "allocations": 2})["status"]
    assert (
        status["health"] == health
        and status["usage"]["total"]["requests"] == 3
        and status["allocations"] == 2
    )
    with pytest.raises(ApiException) as info:
        pool.patch_status(T, "st", {"health": {"state": "Sick"}})
    assert info.value.status == 422
