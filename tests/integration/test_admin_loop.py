"""What admins do, checked with the operator and two proxy replicas running: a rotated personal
token stops working at the proxy, and clearing an Unhealthy verdict by hand puts the token back in
traffic on every replica."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fault_loop import Loop, start_loop
from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
TOKENPOOL = Path(sys.executable).parent / "tokenpool"


def _info(proxy: ProxyProcess, pt: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{proxy.url}/api/user/info", params={"token": pt}, timeout=10)
    return r.status_code, r.json()


def test_rotated_personal_token_stops_working_at_every_replica(
    pool: Pool,
    fake_upstream: FakeUpstream,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
) -> None:
    loop: Loop = start_loop(pool, fake_upstream, operator_process, proxy_process)
    old = loop.pt
    started = time.monotonic()
    out = subprocess.run(
        [str(TOKENPOOL), "users", "rotate", "alice", "-n", pool.ns],
        capture_output=True,
        text=True,
        timeout=60,
        env={"KUBECONFIG": loop.operator._env["KUBECONFIG"], "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    new = out.stdout.strip()
    assert len(new) == 64 and new != old
    for proxy in loop.proxies:
        wait_for(lambda proxy=proxy: _info(proxy, old)[0] == 401, timeout=30, what="old token refused")
        assert _info(proxy, old)[1] == {"error": "Invalid personal token"}
        status, body = _info(proxy, new)
        assert status == 200 and body["user"]["username"] == "alice"
    print(
        f"\nold personal token refused by both replicas {time.monotonic() - started:.2f}s after the rotation"
    )


def test_admin_clearing_unhealthy_puts_the_token_back_everywhere(
    pool: Pool,
    fake_upstream: FakeUpstream,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
    kubectl: Callable[..., Any],
) -> None:
    loop: Loop = start_loop(pool, fake_upstream, operator_process, proxy_process)
    loop.operator.stop()  # no scheduled check in this test: only the admin clears the verdict
    loop.operator._env["TOKENPOOL_OPERATOR_CHECK_BASE_SECONDS"] = "3600"
    loop.operator.start()
    loop.operator.wait_ready()
    loop.fake.fault(loop.bad, "unauthorized")
    status, _ = loop.chat(loop.proxies[0])
    assert status == 200  # failed over
    wait_for(lambda: loop.health().get("state") == "Unhealthy", timeout=15, what="Unhealthy in status")
    wait_for(lambda: loop.everywhere(False), timeout=10, what="out of traffic on both replicas")
    wait_for(lambda: pool.reason(c.KIND_UPSTREAM, "bad", "Healthy") == "Unauthorized", timeout=10)
    loop.fake.clear_fault(loop.bad)  # the admin fixed the account...
    cleared = time.monotonic()
    kubectl(  # ... and clears the verdict as documented
        "patch",
        "ut",
        "bad",
        "-n",
        pool.ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"health":null}}',
    )
    wait_for(lambda: loop.everywhere(True), timeout=15, what="back on both replicas")
    print(f"\ncleared by the admin: back in traffic on both replicas after {time.monotonic() - cleared:.2f}s")
    wait_for(lambda: pool.condition(c.KIND_UPSTREAM, "bad", "Healthy")["status"] == "True", timeout=10)
    loop.served_by_bad()
    assert loop.health().get("state", "Healthy") == "Healthy"  # no replica wrote the old verdict back
