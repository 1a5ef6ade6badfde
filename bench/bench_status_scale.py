"""The status loop at scale: what two proxy replicas cost the API server, idle and under load,
before and after a change — in one run, on one seeded cluster.

Real etcd + kube-apiserver seeded with ``--users`` PoolUsers and ``--tokens`` UpstreamTokens,
each with 31 days of usage in its status, plus their compiled routes
(:mod:`bench.scale_cluster`); the fake Augment upstream. Two proxy replicas of the baseline
revision (``--base``, default: where this branch leaves main) run first, then two of the
working tree, each as ``tokenpool proxy`` runs (from that tree's sources), each behind its own
byte-counting TCP relay (:mod:`bench.net_meter`). For each pair:

* **idle** for ``--window`` seconds: no traffic;
* **load** for ``--window`` seconds: ``wrk`` at ``--rate`` chat requests/s in all (half per
  replica), each request from a random one of the users.

Per phase it prints, per minute and per replica: requests to the API server by verb and
resource (from the API server's ``apiserver_request_total``: only the proxies touch these
resources in the windows), bytes sent to and received from it (the relays), the API server's and
etcd's CPU, and each proxy's CPU and RSS; under load also status writes and 409s, and whether the
counts written add up to the requests served. Ratios are working tree / baseline.

    .venv/bin/python -m bench.bench_status_scale [--users 10000] [--tokens 1000] [--window 60]
        [--rate 200] [--interval 10] [--base REV]

Run time at the defaults: about 2 minutes of seeding and 3 per pair, ~9 minutes in all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ab_proxy import export
from bench.bench_proxy import REPO, cpu_seconds
from bench.net_meter import Meter, Relay, admin_context, apiserver_requests
from bench.scale_cluster import personal_token, seed
from tests.support.kubectl import run_kubectl
from tests.support.usage_load import CHAT
from tests.support.waiting import wait_for
from tokenpool.contract.compiled import PLURAL_UPSTREAM, PLURAL_USER
from tokenpool.dev.controlplane import ControlPlane, free_port
from tokenpool.dev.processes import ManagedProcess
from tokenpool.kube.client import KubeClient, cr_path

NS = "bench"
RESOURCES = {PLURAL_USER, PLURAL_UPSTREAM, "secrets"}


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


class Replica:
    def __init__(self, tree: Path, kubeconfig: str, relay: Relay, logs: Path, interval: float) -> None:
        self.relay = relay
        self.port, self.ops_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ops_url = f"http://127.0.0.1:{self.ops_port}"  # /readyz, /metrics
        env = {
            **os.environ,
            "PYTHONPATH": f"{tree}/proxy:{tree}",  # that tree's code, not the installed one
            "KUBECONFIG": kubeconfig,
            "TOKENPOOL_PROXY_NAMESPACE": NS,
            "TOKENPOOL_PROXY_HOST": "127.0.0.1",
            "TOKENPOOL_PROXY_PORT": str(self.port),
            "TOKENPOOL_PROXY_OPS_PORT": str(self.ops_port),
            "TOKENPOOL_PROXY_USAGE_FLUSH_INTERVAL_SECONDS": str(interval),
            "TOKENPOOL_PROXY_ACCESS_LOG": "false",
            "TOKENPOOL_PROXY_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-c", "from tokenpool_proxy.main import run; run()"]
        self.process = ManagedProcess("proxy", argv, logs / f"proxy-{self.port}.log", env=env)

    def ready(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"proxy exited:\n{self.process.log_tail(40)}")
        try:
            return httpx.get(f"{self.ops_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def wrk_script(path: Path, users: int, delay_ms: float, seed_: int) -> Path:
    tokens = ",".join(f'"{personal_token(i)}"' for i in range(users))
    path.write_text(
        f"tokens = {{{tokens}}}\n"
        f"math.randomseed({seed_})\n"
        f"body = {json.dumps(json.dumps(CHAT))}\n"
        "request = function()\n"
        "  local t = tokens[math.random(#tokens)]\n"
        '  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json",'
        ' ["Authorization"] = "Bearer " .. t}, body)\n'
        "end\n"
        f"function delay() return {delay_ms:.1f} end\n"
    )
    return path


class Phase:
    """Counters at the start of a window; :meth:`end` gives the per-minute figures."""

    def __init__(self, plane: ControlPlane, ctx: Any, pair: list[Replica]) -> None:
        self.plane, self.ctx, self.pair = plane, ctx, pair
        self.t0 = time.monotonic()
        self.requests = apiserver_requests(plane.server, ctx, RESOURCES)
        self.net = [r.relay.snapshot() for r in pair]
        self.cpu = {name: cpu_seconds(pid) for name, pid in plane.pids().items()}
        self.proxy_cpu = [cpu_seconds(r.process.pid) for r in pair]

    def end(self) -> dict[str, Any]:
        minutes = (time.monotonic() - self.t0) / 60
        requests = apiserver_requests(self.plane.server, self.ctx, RESOURCES)
        per = len(self.pair) * minutes
        calls = {k: (v - self.requests.get(k, 0.0)) / per for k, v in requests.items()}
        net = [r.relay.snapshot() for r in self.pair]
        return {
            "minutes": minutes,
            "calls": {k: round(v, 1) for k, v in sorted(calls.items()) if v},
            "calls_total": sum(calls.values()),
            "sent_kb": sum(n.sent - o.sent for n, o in zip(net, self.net, strict=True)) / per / 1024,
            "received_kb": sum(n.received - o.received for n, o in zip(net, self.net, strict=True))
            / per
            / 1024,
            "apiserver_cpu_s": (cpu_seconds(self.plane.pids()["kube-apiserver"]) - self.cpu["kube-apiserver"])
            / minutes,
            "etcd_cpu_s": (cpu_seconds(self.plane.pids()["etcd"]) - self.cpu["etcd"]) / minutes,
            "proxy_cpu_s": sum(
                cpu_seconds(r.process.pid) - c for r, c in zip(self.pair, self.proxy_cpu, strict=True)
            )
            / per,
            "proxy_rss_mb": max(rss_mb(r.process.pid) for r in self.pair),
        }


def user_totals(kubeconfig: str) -> int:
    """Sum of every PoolUser's ``status.usage.total.requests`` (outside the measured windows)."""

    async def read() -> int:
        total = 0
        async with KubeClient.from_environment(kubeconfig) as kube:
            async for page in kube.list_pages(cr_path(NS, PLURAL_USER)):
                for item in page["items"]:
                    usage = (item.get("status") or {}).get("usage") or {}
                    total += usage.get("total", {}).get("requests", 0)
        return total

    return asyncio.run(read())


def run_pair(
    name: str, tree: Path, args: argparse.Namespace, plane: ControlPlane, meter: Meter, logs: Path
) -> dict[str, Any]:
    ctx = admin_context(plane.kubeconfig)
    pair = []
    for i in range(2):
        relay = meter.relay()
        kubeconfig = meter.kubeconfig(plane.kubeconfig, relay, logs / f"{name}-{i}.kubeconfig")
        pair.append(Replica(tree, kubeconfig, relay, logs, args.interval))
    started = time.monotonic()
    for r in pair:
        wait_for(r.ready, timeout=600, interval=0.5, what=f"{name} proxy ready")
    out: dict[str, Any] = {"start_s": time.monotonic() - started}
    time.sleep(args.interval * 1.5)  # past the start: the first flushes, the first list of usage
    phase = Phase(plane, ctx, pair)
    time.sleep(args.window)
    out["idle"] = phase.end()
    print(f"[{name}] idle: {json.dumps(out['idle'])}", flush=True)

    before = user_totals(plane.kubeconfig)
    counted0 = sum(metric(r.ops_url, 'tokenpool_proxy_usage_records_total{outcome="success"}') for r in pair)
    writes0 = sum(metric(r.ops_url, "tokenpool_proxy_status_writes_total") for r in pair)
    conflicts0 = sum(metric(r.ops_url, "tokenpool_proxy_status_conflicts_total") for r in pair)
    connections, per_replica = 8, args.rate / 2
    delay_ms = max(0.0, 1000 * connections / per_replica - 3)
    phase = Phase(plane, ctx, pair)
    runs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{args.window}s",
                "-s",
                str(wrk_script(logs / f"{name}-{i}.lua", args.users, delay_ms, i + 1)),
                f"{r.url}/v1/chat/completions",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, r in enumerate(pair)
    ]
    outs = [p.communicate()[0] for p in runs]
    out["load"] = phase.end()
    whole = phase  # the load and the writing of what it left: the work per request served
    served = sum(int(re.search(r"(\d+) requests in", o).group(1)) for o in outs)  # type: ignore[union-attr]
    non2xx = sum(int(m.group(1)) for o in outs if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o)))
    drained = time.monotonic()
    try:
        wait_for(
            lambda: all(metric(r.ops_url, "tokenpool_proxy_usage_unflushed_requests") == 0 for r in pair),
            timeout=600,
            interval=1,
            what="the last flush",
        )
        out["drain_s"] = time.monotonic() - drained
    except TimeoutError:
        out["drain_s"] = float("inf")  # the replicas never caught up with what they counted
    successes = 'tokenpool_proxy_usage_records_total{outcome="success"}'
    counted = sum(metric(r.ops_url, successes) for r in pair) - counted0
    after = user_totals(plane.kubeconfig)
    out["load"].update(
        rate=served / (args.window),
        non2xx=non2xx,
        counted=counted,
        written=after - before,
        writes=sum(metric(r.ops_url, "tokenpool_proxy_status_writes_total") for r in pair) - writes0,
        conflicts=sum(metric(r.ops_url, "tokenpool_proxy_status_conflicts_total") for r in pair) - conflicts0,
        changed=sum(metric(r.ops_url, "tokenpool_proxy_status_changed_objects_total") for r in pair),
    )
    total = whole.end()
    scale = total["minutes"] * len(pair) / max(1, served) * 1000  # per-minute-per-replica -> per 1000
    out["per_1000"] = {k: total[k] * scale for k in ("calls_total", "sent_kb", "received_kb", "proxy_cpu_s")}
    out["per_1000"]["apiserver_cpu_s"] = total["apiserver_cpu_s"] * total["minutes"] / max(1, served) * 1000
    print(f"[{name}] load: {json.dumps(out['load'])}", flush=True)
    print(f"[{name}] per 1000 requests served, writing included: {json.dumps(out['per_1000'])}", flush=True)
    for r in pair:
        r.process.stop()
    return out


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    base, work = results["base"], results["work"]
    print(
        f"\n{args.users} users / {args.tokens} tokens, 31 days of usage each; 2 replicas, "
        f"flush every {args.interval:.0f}s; per replica per minute; ratio = work / base"
    )
    rows = [
        ("API requests/min", "calls_total", "{:.1f}"),
        ("KB sent/min", "sent_kb", "{:.0f}"),
        ("KB received/min", "received_kb", "{:.0f}"),
        ("API server CPU s/min", "apiserver_cpu_s", "{:.2f}"),
        ("etcd CPU s/min", "etcd_cpu_s", "{:.2f}"),
        ("proxy CPU s/min", "proxy_cpu_s", "{:.2f}"),
        ("proxy RSS MB", "proxy_rss_mb", "{:.0f}"),
    ]
    for phase in ("idle", "load"):
        print(f"{phase}:")
        for label, key, fmt in rows:
            b, w = base[phase][key], work[phase][key]
            ratio = f"{w / b:.3f}" if b else "-"
            print(f"  {label:22} base {fmt.format(b):>10}  work {fmt.format(w):>10}  ratio {ratio}")
        print(f"  requests by kind: base {base[phase]['calls']}")
        print(f"                    work {work[phase]['calls']}")
    print("per 1,000 chat requests served, the writing after the load included (both replicas):")
    for label, key, fmt in (
        ("API requests", "calls_total", "{:.0f}"),
        ("KB sent", "sent_kb", "{:.0f}"),
        ("KB received", "received_kb", "{:.0f}"),
        ("API server CPU s", "apiserver_cpu_s", "{:.2f}"),
        ("proxy CPU s", "proxy_cpu_s", "{:.2f}"),
    ):
        b, w = base["per_1000"][key], work["per_1000"][key]
        ratio = f"{w / b:.3f}" if b else "-"
        print(f"  {label:22} base {fmt.format(b):>10}  work {fmt.format(w):>10}  ratio {ratio}")
    for name in ("base", "work"):
        load = results[name]["load"]
        print(
            f"{name}: start {results[name]['start_s']:.1f}s; load {load['rate']:.0f} req/s, all counts"
            f" written {results[name]['drain_s']:.0f}s after it ended"
            f" ({load['non2xx']} non-2xx); status writes {load['writes']:.0f} (409s {load['conflicts']:.0f},"
            f" changed objects {load['changed']:.0f}); counted {load['counted']:.0f},"
            f" written to users' totals {load['written']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--base", default="", help="baseline revision (default: merge-base of HEAD and main)")
    args = parser.parse_args()
    base_rev = (
        args.base
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    logs = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"load average {os.getloadavg()[0]:.2f}; baseline {base_rev[:10]}; logs {logs}", flush=True)
    from tests.support.proxy_fixtures import FakeUpstream

    plane = ControlPlane.launch()
    meter = Meter(plane.server)
    fake = FakeUpstream(logs, extra_args=["--no-record"])
    fake.configure(text="ok", chunks=1)
    try:
        run_kubectl("apply", "--server-side", "-f", str(REPO / "crds"), kubeconfig=plane.kubeconfig)
        run_kubectl("wait", "--for=condition=Established", "crd", "--all", kubeconfig=plane.kubeconfig)
        t0 = time.monotonic()

        async def seeding() -> None:
            async with KubeClient.from_environment(plane.kubeconfig, limit=32) as kube:
                await seed(kube, NS, args.users, args.tokens, fake.url)

        asyncio.run(seeding())
        print(f"seeded {args.users} users / {args.tokens} tokens in {time.monotonic() - t0:.0f}s", flush=True)
        trees = {"base": export(base_rev, logs / "base"), "work": REPO}
        results = {name: run_pair(name, tree, args, plane, meter, logs) for name, tree in trees.items()}
        report(results, args)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        fake.stop()
        meter.stop()
        plane.stop()


if __name__ == "__main__":
    main()
