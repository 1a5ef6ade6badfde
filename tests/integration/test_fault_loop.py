"""Every fault kind through the whole loop (docs/proxy.md "Health", docs/operator.md "Health
checks"): operator and two proxy replicas as processes, the real API server, the fake upstream.

For each fault: the client's answer, what status, conditions, Events, metrics and ``/api/tokens``
on both replicas show, how long the token rests (measured from the failing request until both
replicas list it again, across an operator recompile and, for one fault, a proxy restart), and
how it recovers: by time and a half-open trial for cool-downs, by the operator's scheduled check
(or one asked for with the CLI) for Unhealthy verdicts. The figures are printed (run with -s).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.fault_loop import BLOCKED_S, COOLDOWN_BASE_S, Loop, start_loop
from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
TOKENPOOL = Path(sys.executable).parent / "tokenpool"


def _ok(body: str) -> bool:
    return "Hello from the fake Augment upstream." in body


def _notice(body: str) -> bool:
    return '"upstream_notice"' in body and "not retried on another token" in body


def _stream_error(body: str) -> bool:
    return "Hello" in body and "upstream_stream_failed" in body and body.rstrip().endswith("data: [DONE]")


@dataclass
class Fault:
    title: str
    fault: str
    spec: dict[str, Any]
    stream: bool
    status: int
    answer: Callable[[str], bool]
    state: str
    reason: str
    rest: float = 0.0  # documented rest of a cool-down (s)
    grows: bool = False  # keep failing through a second rest: the backoff doubles
    restart_proxy: bool = False
    cli_check: bool = False
    figures: dict[str, float] = field(default_factory=dict)


FAULTS = [
    Fault("401", "unauthorized", {}, False, 200, _ok, "Unhealthy", "Unauthorized"),
    Fault(
        "403 suspended notice", "suspended", {}, False, 502, _notice, "Unhealthy", "Suspended", cli_check=True
    ),
    Fault(
        "Blocked notice (200 stream)",
        "blocked",
        {},
        True,
        502,
        _notice,
        "CoolingDown",
        "Blocked",
        rest=BLOCKED_S,
        restart_proxy=True,
    ),
    Fault(
        "429 Retry-After: 4",
        "rate_limited",
        {"retry_after": 4},
        False,
        200,
        _ok,
        "CoolingDown",
        "RateLimited",
        rest=4,
    ),
    Fault(
        "5xx (twice)",
        "server_error",
        {"status": 503},
        False,
        200,
        _ok,
        "CoolingDown",
        "ServerError",
        rest=COOLDOWN_BASE_S,
        grows=True,
    ),
    Fault("hang", "hang", {}, False, 200, _ok, "CoolingDown", "Timeout", rest=COOLDOWN_BASE_S),
    Fault(
        "reset mid-stream",
        "drop",
        {"after_chunks": 1},
        True,
        200,
        _stream_error,
        "CoolingDown",
        "ConnectError",
        rest=COOLDOWN_BASE_S,
    ),
    Fault(
        "malformed NDJSON",
        "malformed",
        {"after_chunks": 0},
        False,
        200,
        _ok,
        "CoolingDown",
        "MalformedAnswer",
        rest=COOLDOWN_BASE_S,
    ),
]


def first_on_bad(loop: Loop, stream: bool) -> tuple[int, str]:
    """Send requests through replica 0 until one reaches "bad" (the balancer alternates)."""
    before = loop.bad_requests()
    for _ in range(8):
        status, body = loop.chat(loop.proxies[0], stream)
        if loop.bad_requests() > before:
            return status, body
    raise AssertionError("no request reached the faulty token")


def recompile(loop: Loop, concurrency: int) -> None:
    """An operator recompile of the route that keeps the credential: health must survive it."""
    loop.pool.patch(c.KIND_UPSTREAM, "bad", {"spec": {"maxConcurrency": concurrency}})
    wait_for(
        lambda: (
            (loop.route()[1] or c.UpstreamRoute(name="", endpoint="", token="")).max_concurrency
            == concurrency
        ),
        timeout=15,
        what="route recompiled",
    )


def run_fault(loop: Loop, f: Fault, index: int) -> None:
    A, B = loop.proxies
    _, route_before = loop.route()
    t0 = time.monotonic()
    loop.fake.fault(loop.bad, f.fault, **f.spec)
    status, body = first_on_bad(loop, f.stream)
    assert status == f.status and f.answer(body), (f.title, status, body[:400])
    wait_for(
        lambda: (loop.health().get("state"), loop.health().get("reason")) == (f.state, f.reason),
        timeout=15,
        what=f"{f.title}: status.health {f.state}/{f.reason}",
    )
    f.figures["in status after (s)"] = time.monotonic() - t0
    health = loop.health()
    assert set(health) <= {
        "state",
        "reason",
        "lastError",
        "lastErrorAt",
        "cooldownUntil",
        "consecutiveFailures",
        "clearedAt",
    }
    assert loop.bad not in str(health)  # categories only
    wait_for(lambda: loop.everywhere(False), timeout=10, what=f"{f.title}: both replicas stop listing it")
    series = f'tokenpool_proxy_upstream_attempts_total{{outcome="{f.reason}",upstream="bad"}}'
    assert loop.metric(A, series) >= 1, series
    recompile(loop, 2 + index % 2)  # during the rest
    assert loop.everywhere(False), f"{f.title}: a recompile reset the verdict"
    if f.state == "CoolingDown":
        cond = wait_for(
            lambda: loop.pool.condition(c.KIND_UPSTREAM, "bad", "Healthy"),
            timeout=10,
            what="Healthy condition",
        )
        assert cond["status"] == "True"
        _, route = loop.route()
        assert route is not None and route_before is not None
        assert (route.healthy, route.health_reason) == (True, ""), (
            "a cool-down is never compiled into the route"
        )
        if f.restart_proxy:
            B.restart()
            assert "bad" not in loop.listed(B), "a restarted replica forgot the cool-down"
        start = t0
        if f.grows:
            wait_for(lambda: loop.everywhere(True), timeout=f.rest + 10, what="first rest over")
            f.figures["first rest (s)"] = time.monotonic() - t0
            start = time.monotonic()
            first_on_bad(loop, False)  # the half-open trial fails again
            seen: list[dict[str, Any]] = []

            def second_failure() -> bool:
                seen.append(loop.health())
                return seen[-1].get("consecutiveFailures") == 2

            try:
                wait_for(second_failure, timeout=10, what="second failure in status.health")
            except TimeoutError:
                raise AssertionError(f"status.health never had 2 failures; last: {seen[-3:]}") from None
        cleared = time.monotonic()
        loop.fake.clear_fault(loop.bad)
        wait_for(lambda: loop.everywhere(True), timeout=f.rest * 2 + 15, what=f"{f.title}: rest over")
        rest = time.monotonic() - start
        expected = f.rest * (2 if f.grows else 1)
        assert rest >= expected * 0.9, f"{f.title}: rested {rest:.1f}s, documented {expected:.0f}s"
        f.figures["rest (s)"] = rest
        f.figures["recovery (s)"] = loop.served_by_bad() - cleared
    else:
        wait_for(
            lambda: ("Warning", "Unhealthy") in {(t, r) for t, r, _ in loop.pool.events("bad")},
            timeout=10,
            what="Unhealthy Event",
        )
        assert loop.pool.reason(c.KIND_UPSTREAM, "bad", "Healthy") == f.reason
        check = wait_for(
            lambda: (ck := loop.check()).get("lastResult") == f.reason and ck.get("nextAt") and ck,
            timeout=20,
            what="a scheduled check failed and the next one is due",
        )
        assert check["failures"] >= 1
        if loop.kubectl is not None:  # what an admin sees: when the next check is due
            header, row = loop.kubectl("get", "ut", "bad", "-n", loop.pool.ns).stdout.splitlines()[:2]
            assert "NEXT CHECK" in header and loop.check()["nextAt"] in row, (header, row)
        cleared = time.monotonic()
        loop.fake.clear_fault(loop.bad)
        if f.cli_check:
            out = subprocess.run(
                [str(TOKENPOOL), "tokens", "check", "bad", "-n", loop.pool.ns, "--timeout", "30"],
                capture_output=True,
                text=True,
                timeout=60,
                env={"KUBECONFIG": loop.operator._env["KUBECONFIG"], "PATH": "/usr/bin:/bin"},
            )
            assert out.returncode == 0 and out.stdout.strip() == "bad: Healthy", out
        wait_for(
            lambda: loop.everywhere(True), timeout=30, what=f"{f.title}: back in traffic on both replicas"
        )
        f.figures["rest (s)"] = time.monotonic() - t0
        f.figures["recovery (s)"] = time.monotonic() - cleared
        health = loop.health()
        assert health["state"] == "Healthy" and health.get("clearedAt")
        assert ("Normal", "Recovered") in {(t, r) for t, r, _ in loop.pool.events("bad")}
        loop.served_by_bad()


def test_every_fault_rests_as_documented_and_recovers(
    pool: Pool,
    fake_upstream: FakeUpstream,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
    kubectl: Callable[..., Any],
) -> None:
    loop = start_loop(pool, fake_upstream, operator_process, proxy_process)
    loop.kubectl = kubectl
    for i, f in enumerate(FAULTS):
        run_fault(loop, f, i)
    print("\nfault | client | in status | rest | recovery (s, measured)")
    for f in FAULTS:
        fig = f.figures
        first = f" (first rest {fig['first rest (s)']:.1f})" if "first rest (s)" in fig else ""
        print(
            f"{f.title} | {f.status} | {fig['in status after (s)']:.2f} | {fig['rest (s)']:.1f}{first}"
            f" | {fig['recovery (s)']:.1f}"
        )
