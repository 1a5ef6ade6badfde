"""The whole loop for fault tests: operator and two proxy replicas as processes on the real API
server, two Augment tokens on the fake upstream ("bad" gets the faults, "good" stays healthy) and
one user holding both, "bad" first (so a fresh pool sends the first request there).

Short, configurable durations stand in for production's: flush 0.5 s, cool-down base 2 s, blocked
6 s, idle gap 1 s, operator checks from 2 s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

FLUSH_S = 0.5
COOLDOWN_BASE_S = 2.0
BLOCKED_S = 6.0
READ_TIMEOUT_S = 1.0
CHECK_BASE_S = 2.0
PROXY_ENV = {
    "usage_flush_interval_seconds": FLUSH_S,
    "cooldown_base_seconds": COOLDOWN_BASE_S,
    "cooldown_max_seconds": 30,
    "blocked_cooldown_seconds": BLOCKED_S,
    "read_timeout_seconds": READ_TIMEOUT_S,
    "slot_wait_seconds": 3,
}
OPERATOR_ENV = {"check_base_seconds": CHECK_BASE_S, "check_max_seconds": 8, "check_timeout_seconds": 3}
CHAT = {"model": "augment-chat", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Loop:
    pool: Pool
    fake: FakeUpstream
    proxies: list[ProxyProcess]
    operator: Any
    pt: str = ""
    creds: dict[str, str] = field(default_factory=dict)
    kubectl: Callable[..., Any] | None = None

    @property
    def bad(self) -> str:
        return self.creds["bad"]

    def listed(self, proxy: ProxyProcess) -> set[str]:
        r = httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {self.pt}"}, timeout=10)
        r.raise_for_status()
        by_cred = {v: k for k, v in self.creds.items()}
        return {by_cred[t["token"]] for t in r.json()["tokens"]}

    def everywhere(self, present: bool) -> bool:
        return all(("bad" in self.listed(p)) == present for p in self.proxies)

    def chat(self, proxy: ProxyProcess, stream: bool = False) -> tuple[int, str]:
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={**CHAT, "stream": stream},
            headers={"Authorization": f"Bearer {self.pt}"},
            timeout=30,
        )
        return r.status_code, r.text

    def health(self) -> dict[str, Any]:
        return dict((self.pool.get(c.KIND_UPSTREAM, "bad").get("status") or {}).get("health") or {})

    def check(self) -> dict[str, Any]:
        return dict((self.pool.get(c.KIND_UPSTREAM, "bad").get("status") or {}).get("check") or {})

    def route(self) -> tuple[str, c.UpstreamRoute | None]:
        secret = self.pool.secret(c.upstream_route_name("bad"))
        rv = secret.metadata.resource_version if secret is not None else ""
        return rv, self.pool.upstream_route("bad")

    def metric(self, proxy: ProxyProcess, series: str) -> float:
        text = httpx.get(f"{proxy.ops_url}/metrics", timeout=10).text
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def bad_requests(self) -> int:
        return int(self.fake.stats().get(self.bad, {}).get("requests", 0))

    def served_by_bad(self, timeout: float = 30) -> float:
        """Send requests through replica 0 until one is answered by "bad"; returns when."""
        before = self.bad_requests()

        def served() -> bool:
            status, _ = self.chat(self.proxies[0])
            return status == 200 and self.bad_requests() > before

        wait_for(served, timeout=timeout, interval=0.2, what="a request served by the recovered token")
        return time.monotonic()


def start_loop(
    pool: Pool,
    fake: FakeUpstream,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., ProxyProcess],
) -> Loop:
    operator = operator_process(pool.ns, **OPERATOR_ENV)
    creds = {name: f"cred-{name}-{pool.ns}" for name in ("bad", "good")}
    for name, value in creds.items():
        pool.credential(f"{name}-cred", value)
        pool.token(name, endpoint=fake.tenant(name))
    pool.user("alice")
    pool.allocation("alice-all", "alice", tokens=["bad", "good"])
    wait_for(lambda: pool.upstream_names("alice") == ["bad", "good"], timeout=30, what="alice's route")
    pt = wait_for(lambda: pool.personal_token("alice"), timeout=10, what="alice's token")
    proxies = [proxy_process(pool.ns, **PROXY_ENV) for _ in range(2)]
    loop = Loop(pool, fake, proxies, operator, pt, creds)
    wait_for(lambda: loop.everywhere(True), timeout=20, what="both replicas serving both tokens")
    return loop
