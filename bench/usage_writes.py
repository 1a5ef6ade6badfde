"""API-server write rate of the usage write-back under sustained load.

Real etcd + kube-apiserver, the fake Augment upstream, two proxy replicas (separate processes),
one user with two tokens. An open-loop client sends ``--rate`` chat requests per second for
``--seconds``, spread over both replicas; the proxies' own counters give the status writes.
Prints the writes against the bound (changed objects x flush intervals per replica) and against
the naive design (one status write per request per object), and checks the totals are exact.

    .venv/bin/python -m bench.usage_writes [--rate 200] [--seconds 30] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import secrets
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import kubernetes

from tests.support.kubectl import run_kubectl
from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.proxy_routes import RoutesInCluster, new_personal_token, upstream_route, user_route
from tests.support.usage_fixtures import UsageObjects
from tests.support.usage_load import CHAT
from tests.support.waiting import wait_for
from tokenpool.contract import KIND_UPSTREAM, KIND_USER
from tokenpool.devtools import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ("tok-a", "tok-b")


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def paced_load(urls: list[str], token: str, rate: float, seconds: float) -> tuple[int, int, float]:
    """Open loop: request i starts at i/rate whatever the previous ones did. (ok, failed, secs)."""
    ok = failed = 0
    total = int(rate * seconds)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(i: int) -> None:
            nonlocal ok, failed
            try:
                async with session.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=CHAT) as r:
                    await r.read()
                    ok += r.status == 200
                    failed += r.status != 200
            except aiohttp.ClientError:
                failed += 1

        started = time.monotonic()
        tasks = []
        for i in range(total):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        return ok, failed, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=10)
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    plane = ControlPlane.launch()
    procs: list[ProxyProcess] = []
    fake: FakeUpstream | None = None
    try:
        run_kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=plane.kubeconfig)
        run_kubectl("wait", "--for=condition=Established", "crd", "--all", kubeconfig=plane.kubeconfig)
        ns = f"bench-{secrets.token_hex(3)}"
        api = plane.api_client()
        kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
        objects, routes = UsageObjects(api, ns), RoutesInCluster(api, ns)
        fake = FakeUpstream(logs)
        fake.http.put("_control/config", json={"text": "ok", "chunks": 1}).raise_for_status()
        for name in TOKENS:
            objects.upstream(name, fake.tenant(name))
            routes.put_upstream(upstream_route(name, fake.tenant(name), maxConcurrency=1000))
        pt = new_personal_token()
        objects.user("alice")
        routes.put_user(user_route("alice", pt, TOKENS))
        env = {"usage_flush_interval_seconds": args.interval, "access_log": "false", "log_level": "WARNING"}
        procs = [ProxyProcess(ns, plane.kubeconfig, logs, env) for _ in range(2)]
        for p in procs:
            p.wait_ready()
        urls = [p.url for p in procs]

        writes_before = sum(metric(u, "tokenpool_proxy_status_writes_total") for u in urls)
        window_start = time.monotonic()
        ok, failed, elapsed = asyncio.run(paced_load(urls, pt, args.rate, args.seconds))
        wait_for(
            lambda: all(metric(u, "tokenpool_proxy_usage_unflushed_requests") == 0 for u in urls),
            timeout=args.interval * 3,
            what="the last periodic flush",
        )
        window = time.monotonic() - window_start
        writes = sum(metric(u, "tokenpool_proxy_status_writes_total") for u in urls) - writes_before
        conflicts = sum(metric(u, "tokenpool_proxy_status_conflicts_total") for u in urls)
        total = objects.usage(KIND_USER, "alice").total.requests
        by_token = sum(objects.usage(KIND_UPSTREAM, t).total.requests for t in TOKENS)
        changed_objects = 1 + len(TOKENS)
        intervals = math.floor(window / args.interval) + 1  # flush ticks a replica can have in the window
        bound = changed_objects * intervals * len(procs)
        naive = ok * changed_objects
        print(
            f"load: {ok} ok / {failed} failed in {elapsed:.1f}s = {ok / elapsed:.0f} req/s "
            f"(asked {args.rate:.0f} req/s for {args.seconds:.0f}s), 2 replicas, interval {args.interval}s"
        )
        print(
            f"status writes: {writes:.0f} (409 conflicts retried: {conflicts:.0f}); "
            f"bound changed objects x intervals x replicas = {changed_objects} x {intervals} x {len(procs)} "
            f"= {bound}; naive one write per request per object = {naive}"
        )
        print(
            f"ratio writes / naive = {writes / naive if naive else 0:.5f}; "
            f"exact: user total {total} == ok {ok}: {total == ok}; tokens {by_token} == ok: {by_token == ok}"
        )
    finally:
        for p in procs:
            p.stop()
        if fake is not None:
            fake.stop()
        plane.stop()


if __name__ == "__main__":
    main()
