"""API-server write rate of the usage write-back under sustained load.

Real etcd + kube-apiserver, the fake Augment upstream, two proxy replicas (separate processes),
one user with two tokens. ``wrk`` (hack/install-bench-tools.sh) sends about ``--rate`` chat
requests per second for ``--seconds``, half to each replica (paced with wrk's ``delay()``); the
proxies' own counters give the status writes.
Prints the writes against the bound (changed objects x flush intervals per replica) and against
the naive design (one status write per request per object), and checks the totals are exact.

    .venv/bin/python -m bench.usage_writes [--rate 200] [--seconds 30] [--interval 10]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import kubernetes

from tests.support.kubectl import run_kubectl
from tests.support.proxy_fixtures import FakeUpstream, ProxyProcess
from tests.support.proxy_routes import RoutesInCluster, new_personal_token, upstream_route, user_route
from tests.support.usage_fixtures import UsageObjects
from tests.support.usage_load import CHAT
from tests.support.waiting import wait_for
from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.dev.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ("tok-a", "tok-b")


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wrk_script(path: Path, token: str, delay_ms: float) -> Path:
    """POST the chat body; each connection waits ``delay_ms`` before each request (pacing)."""
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(CHAT))}",
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["Authorization"] = "Bearer {token}"',
        f"function delay() return {delay_ms:.1f} end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def paced_load(urls: list[str], script: Path, rate: float, seconds: float) -> tuple[int, int, float]:
    """One ``wrk`` per replica at the same time, paced to ``rate`` in all: (ok, non-2xx, secs)."""
    connections = 8
    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "-s",
                str(script),
                f"{url}/v1/chat/completions",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outs = [run.communicate()[0] for run in runs]
    elapsed = time.monotonic() - started
    total = bad = 0
    for out in outs:
        total += int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        bad += int(non2xx.group(1)) if non2xx else 0
    return total - bad, bad, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--latency-ms", type=float, default=16, help="expected answer latency, for pacing")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    plane = ControlPlane.launch()
    procs: list[ProxyProcess] = []
    fake: FakeUpstream | None = None
    try:
        run_kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=plane.kubeconfig)
        run_kubectl("wait", "--for=condition=Established", "crd", "--all", kubeconfig=plane.kubeconfig)
        ns = f"bench-{secrets.token_hex(3)}"
        api = kubernetes.config.new_client_from_config(config_file=plane.kubeconfig)
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
        ops = [p.ops_url for p in procs]  # /metrics is on the operations port

        writes_before = sum(metric(u, "tokenpool_proxy_status_writes_total") for u in ops)
        window_start = time.monotonic()
        # 8 connections per replica, each waiting between requests so the sum of rates is about
        # ``--rate``: the period minus the answer's own latency (estimated; the achieved rate is
        # what is reported).
        delay_ms = max(0.0, 1000 * 8 * len(urls) / args.rate - args.latency_ms)
        script = wrk_script(logs / "chat.lua", pt, delay_ms)
        ok, failed, elapsed = paced_load(urls, script, args.rate, args.seconds)
        wait_for(
            lambda: all(metric(u, "tokenpool_proxy_usage_unflushed_requests") == 0 for u in ops),
            timeout=args.interval * 3,
            what="the last periodic flush",
        )
        window = time.monotonic() - window_start
        writes = sum(metric(u, "tokenpool_proxy_status_writes_total") for u in ops) - writes_before
        conflicts = sum(metric(u, "tokenpool_proxy_status_conflicts_total") for u in ops)
        counted = sum(metric(u, 'tokenpool_proxy_usage_records_total{outcome="success"}') for u in ops)
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
            f"ratio writes / naive = {writes / naive if naive else 0:.5f}; exact: the replicas counted "
            f"{counted:.0f} answered requests, status: user {total}, tokens {by_token} "
            f"({'equal' if total == by_token == counted else 'DIFFERENT'}; wrk saw {ok}: it drops the "
            f"requests in flight when it stops)"
        )
    finally:
        for p in procs:
            p.stop()
        if fake is not None:
            fake.stop()
        plane.stop()


if __name__ == "__main__":
    main()
