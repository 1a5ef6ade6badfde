"""Migration end to end: D1 dump → `tokenpool migrate` → kubectl apply → operator → proxy.

The point of the migration is that people keep working without noticing: a migrated user's old
personal token must open the plugin API and reach the upstream tokens they had.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.support.waiting import wait_for
from tokenpool.cli.main import app
from tokenpool.contract import compiled as contract

pytestmark = pytest.mark.integration
DUMP = Path(__file__).parent.parent / "data" / "d1_dump.sql"
ALICE_PT = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
BOB_PT = "1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c"
DAVE_PT = "7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b"
TOKEN_1 = "3f1c9a7e5b2d4f608a1e9c3b7d5f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f"
TOKEN_2 = "b7e4d2a9c1f8e6b3a5d7c9e1f3b5a7d9c2e4f6a8b1d3e5f7a9c2b4d6e8f1a3c5"


def migrated_yaml(tmp_path: Path, namespace: str, fake_url: str) -> str:
    """Run the real CLI on the dump, then point the tenant URLs at the fake upstream."""
    out = tmp_path / "migrated.yaml"
    res = CliRunner().invoke(app, ["migrate", str(DUMP), "-o", str(out), "-n", namespace])
    assert res.exit_code == 0, res.output
    docs = list(yaml.safe_load_all(out.read_text()))
    for doc in docs:
        if doc["kind"] == contract.KIND_UPSTREAM:
            tenant = doc["spec"]["endpoint"].split("//")[1].split(".")[0]
            doc["spec"]["endpoint"] = f"{fake_url}{tenant}/"
    return yaml.safe_dump_all(docs, allow_unicode=True)


def user_info(proxy_url: str, token: str) -> dict[str, Any]:
    response = httpx.get(f"{proxy_url}/api/user/info", params={"token": token}, timeout=5)
    body: dict[str, Any] = response.json()
    body["_status"] = response.status_code
    return body


def test_migrated_users_keep_their_personal_tokens(
    tmp_path: Path,
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., Any],
    fake_upstream: Any,
) -> None:
    text = migrated_yaml(tmp_path, namespace, fake_upstream.url)
    applied = kubectl("apply", "-f", "-", input=text).stdout
    assert "pooluser.tokenpool.io/alice created" in applied
    assert "tokenallocation.tokenpool.io/alice-p1 created" in applied
    operator_process(namespace)
    proxy = proxy_process(namespace)

    info = wait_for(
        lambda: (r := user_info(proxy.url, ALICE_PT))["_status"] == 200 and r,
        timeout=60,
        what="alice's old personal token accepted by the proxy",
    )
    assert info["status"] == "success"
    assert info["user"]["username"] == "alice"
    assert info["user"]["email"] == "alice@example.com"
    assert info["user"]["token_quota"] == 3

    # Alice's allocations kept their priority: both upstream tokens are hers.
    def alice_tokens() -> set[str]:
        r = httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {ALICE_PT}"}, timeout=5)
        return {t["token"] for t in r.json().get("tokens", [])} if r.status_code == 200 else set()

    assert wait_for(lambda: alice_tokens() == {TOKEN_1, TOKEN_2}, timeout=60, what="alice's two tokens")

    # A chat through an old token reaches the upstream with a migrated credential.
    chat = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {BOB_PT}"},
        json={"model": "augment-chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"]
    # Bob's priority-1 allocation is token 2 (token 1 is his priority 2; token 3 was revoked).
    assert {r["token"] for r in fake_upstream.requests()} == {TOKEN_2}

    # A user suspended in the old system stays locked out, and a wrong token is still wrong.
    assert user_info(proxy.url, DAVE_PT) == {"error": "User is suspended", "_status": 403}
    assert user_info(proxy.url, "f" * 64) == {"error": "Invalid personal token", "_status": 401}
