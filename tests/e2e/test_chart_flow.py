"""The whole system running as the chart's ServiceAccounts, so the chart's RBAC is what is tested.

The operator and the proxy are real processes whose kubeconfig holds a TokenRequest token of the
ServiceAccount the chart gives them (nothing else: no admin credentials). Then what an admin
and a user do: a user is created, the operator issues the personal token, the plugin API and an
OpenAI client use it, and the proxy writes the usage into the CRs' status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.operator_fixtures import OperatorProcess
from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.rbac import Identities
from tests.support.tokenpool_objects import GOOD_CREDENTIAL, Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as contract

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

FORBIDDEN_MARKERS = ("Forbidden", "forbidden")  # a 403 from the API server always says so


@pytest.fixture
def as_chart_identities(
    chart_rbac: Identities, sa_kubeconfig: Callable[[str, str], str], tmp_path: Path
) -> Iterator[tuple[OperatorProcess, ProxyProcess]]:
    """Operator and proxy processes authenticated as the chart's ServiceAccounts."""
    ns = chart_rbac.namespace
    operator = OperatorProcess(ns, sa_kubeconfig(ns, chart_rbac.operator), tmp_path, {})
    proxy = ProxyProcess(
        ns, sa_kubeconfig(ns, chart_rbac.proxy), tmp_path, {"usage_flush_interval_seconds": 0.5}
    )
    try:
        # Generous: the machine is shared and both start a Python interpreter with Kopf/FastAPI.
        operator.wait_ready(timeout=90)
        proxy.wait_ready(timeout=90)
        yield operator, proxy
    finally:
        proxy.stop()
        operator.stop()
        print(f"--- operator log ---\n{operator.log(100)}\n--- proxy log ---\n{proxy.log(100)}")


def _user_info(proxy_url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{proxy_url}/api/user/info", params={"token": token}, timeout=5)
    return {"_status": response.status_code, **response.json()}


def _requests_in_status(pool: Pool, kind: str, name: str) -> int:
    usage = (pool.get(kind, name).get("status") or {}).get("usage") or {}
    return int((usage.get("total") or {}).get("requests", 0))


def test_full_flow_as_the_chart_service_accounts(
    chart_rbac: Identities,
    as_chart_identities: tuple[OperatorProcess, ProxyProcess],
    pool: Pool,
    fake_upstream: FakeUpstream,
) -> None:
    operator, proxy = as_chart_identities
    # The admin declares an upstream token, a user and an allocation.
    pool.credential("aug-1-cred", GOOD_CREDENTIAL)
    pool.token("aug-1", endpoint=fake_upstream.tenant("t1"))
    pool.user("alice")
    pool.allocation("alice-aug", "alice", tokens=["aug-1"])

    # The operator (as its ServiceAccount) issues the personal token and compiles the routes.
    personal_token = wait_for(lambda: pool.personal_token("alice"), timeout=60, what="alice's personal token")
    assert isinstance(personal_token, str) and len(personal_token) == 64
    wait_for(
        lambda: pool.reason(contract.KIND_USER, "alice") is not None,
        timeout=60,
        what="alice has a Ready condition",
    )

    # The proxy (as its ServiceAccount) serves the plugin API with it...
    info = wait_for(
        lambda: (r := _user_info(proxy.url, personal_token))["_status"] == 200 and r,
        timeout=60,
        what="the proxy accepts alice's personal token",
    )
    assert info["status"] == "success" and info["user"]["username"] == "alice"

    def tokens() -> list[dict[str, Any]]:
        r = httpx.get(
            f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {personal_token}"}, timeout=5
        )
        return list(r.json().get("tokens", [])) if r.status_code == 200 else []

    listed = wait_for(tokens, timeout=60, what="alice's allocated token listed")
    assert [t["token"] for t in listed] == [GOOD_CREDENTIAL]

    # ... and the OpenAI-compatible endpoint, through a real OpenAI client.
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=personal_token, max_retries=0, timeout=30)
    answer = client.chat.completions.create(
        model="augment-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    assert [r["token"] for r in fake_upstream.requests()] == [GOOD_CREDENTIAL]

    # Usage lands in the status of the user and of the upstream token (patched by the proxy SA).
    # One chat: exactly one request on each (a double count would show 2).
    wait_for(
        lambda: _requests_in_status(pool, contract.KIND_USER, "alice") == 1, timeout=30, what="usage on alice"
    )
    wait_for(
        lambda: _requests_in_status(pool, contract.KIND_UPSTREAM, "aug-1") == 1,
        timeout=30,
        what="usage on aug-1",
    )

    # Nothing was refused along the way: the chart's RBAC covers every call both made.
    for name, log in (("operator", operator.log(1000)), ("proxy", proxy.log(1000))):
        refused = [line for line in log.splitlines() if any(m in line for m in FORBIDDEN_MARKERS)]
        assert refused == [], f"{name} was refused by RBAC:\n" + "\n".join(refused[:10])
    assert operator.alive()
