"""Operator convergence: how long until N users / tokens / allocations are compiled.

Real etcd + kube-apiserver and a real ``tokenpool operator`` process. The objects are created
first with the operator stopped (the "operator restart on a full cluster" case), then the
operator is started and timed until every user has its route Secret and personal-token
Secret, every token its compiled Secret, and every allocation its granted tokens (and its memory
is read then). Then a burst of new users is created with the operator running (the incremental
case); then a proxy replica starts on the big cluster and one change at a time is timed from the
``kubectl apply`` to the moment the proxy serves it (a new user with a token allocated, until
``/api/tokens`` hands it out); finally the operator is restarted on the converged cluster (it
must re-check everything and rewrite nothing).

Baseline measured in the same run: the raw rate at which this API server accepts ConfigMap
creations from one client at the operator's concurrency. The ratio says how close the operator
(about 5 writes per new user: two Secrets, Event, two status patches) comes to the API
server's own write speed.

    .venv/bin/python -m bench.bench_operator [--users 1000] [--tokens 100] [--workers 4] [--changes 5]

At 10,000 users and 1,000 tokens it takes about 15 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_status_scale import rss_mb
from tests.support.kubectl import run_kubectl
from tests.support.operator_fixtures import OperatorProcess
from tests.support.proxy_fixtures import ProxyProcess
from tests.support.waiting import async_wait_for
from tokenpool.contract import compiled as c
from tokenpool.dev import binaries
from tokenpool.dev.controlplane import ControlPlane
from tokenpool.kube.client import KubeClient, core_path, cr_path

ROOT = Path(__file__).resolve().parents[1]
POOLS = 10


def kube_for(kubeconfig: str, limit: int) -> KubeClient:
    return KubeClient.from_environment(kubeconfig, limit=limit)


async def bounded(n: int, concurrency: int, make) -> float:  # type: ignore[no-untyped-def]
    """Run ``make(i)`` for i < n with ``concurrency`` in flight; seconds taken."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - start


async def baseline(kube: KubeClient, ns: str, n: int, concurrency: int) -> float:
    """ConfigMap creations per second, straight to the API server."""
    await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})

    async def make(i: int) -> None:
        await kube.create(
            core_path(ns, "configmaps"), {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v" * 200}}
        )

    return n / await bounded(n, concurrency, make)


async def seed(kube: KubeClient, ns: str, users: int, tokens: int, first: int = 0) -> int:
    """Tokens (with credential Secrets), users, and per user one selector allocation (count 1)
    plus, for every 10th user, one allocation by name. Returns the number of custom resources."""
    if first == 0:
        await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})

        async def token(i: int) -> None:
            await kube.create(
                core_path(ns, "secrets"),
                {"metadata": {"name": f"cred-{i}"}, "stringData": {"token": f"{i:064x}"}},
            )
            await kube.create(
                cr_path(ns, c.PLURAL_UPSTREAM),
                {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_UPSTREAM,
                    "metadata": {"name": f"tok-{i}", "labels": {"pool": f"p{i % POOLS}"}},
                    "spec": {
                        "endpoint": "https://d1.api.augmentcode.com/",
                        "credentialSecretRef": {"name": f"cred-{i}"},
                    },
                },
            )

        await bounded(tokens, 16, token)

    def cr(kind: str, plural: str, name: str, spec: dict) -> object:  # type: ignore[type-arg]
        body = {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        return kube.create(cr_path(ns, plural), body)

    async def user(j: int) -> None:
        i = first + j
        await cr(c.KIND_USER, c.PLURAL_USER, f"user-{i}", {"email": f"u{i}@example.com"})  # type: ignore[misc]
        sel = {"selector": {"matchLabels": {"pool": f"p{i % POOLS}"}}, "count": 1}
        await cr(c.KIND_ALLOCATION, c.PLURAL_ALLOCATION, f"sel-{i}", {"user": f"user-{i}", **sel})  # type: ignore[misc]
        if i % 10 == 0:
            named = {"user": f"user-{i}", "tokens": [f"tok-{i % tokens}"], "priority": 2}
            await cr(c.KIND_ALLOCATION, c.PLURAL_ALLOCATION, f"named-{i}", named)  # type: ignore[misc]

    await bounded(users, 16, user)
    return (tokens if first == 0 else 0) + users * 2 + (users + 9) // 10


def cpu_seconds(op: OperatorProcess) -> float:
    """User+system CPU of the operator process so far (Linux /proc)."""
    assert op.process is not None
    fields = Path(f"/proc/{op.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def count_converged(kube: KubeClient, ns: str) -> tuple[int, int, int]:
    """(user routes, upstream routes, allocations with granted tokens) in the namespace."""
    routes = await kube.get(core_path(ns, "secrets") + f"?labelSelector={c.LABEL_ROUTE}%3D{c.ROUTE_USER}")
    ups = await kube.get(core_path(ns, "secrets") + f"?labelSelector={c.LABEL_ROUTE}%3D{c.ROUTE_UPSTREAM}")
    allocs = await kube.get(cr_path(ns, c.PLURAL_ALLOCATION))
    granted = sum(1 for a in (allocs or {}).get("items", []) if (a.get("status") or {}).get("tokens"))
    return len((routes or {})["items"]), len((ups or {})["items"]), granted


async def measure(args: argparse.Namespace, plane: ControlPlane, holder: list[OperatorProcess]) -> None:
    kube = kube_for(plane.kubeconfig, 16)
    ns = "bench"
    try:
        base_rate = await baseline(kube, "baseline", min(args.users, 2000), args.workers)
        t0 = time.monotonic()
        crs = await seed(kube, ns, args.users, args.tokens)
        print(f"created {crs} custom resources (+{args.tokens} Secrets) in {time.monotonic() - t0:.1f}s")

        allocs = args.users + (args.users + 9) // 10
        want = (args.users, args.tokens, allocs)
        start = time.monotonic()
        op = OperatorProcess(ns, plane.kubeconfig, Path(tempfile.mkdtemp()), {"workers": args.workers})
        holder.append(op)
        await asyncio.to_thread(op.wait_ready, 120)
        ready = time.monotonic() - start

        async def idle() -> bool:
            q = (await asyncio.to_thread(op.probe))["queue"]
            return bool(q["pending"] == 0 and q["processed"] >= args.users + args.tokens)

        await async_wait_for(idle, timeout=args.timeout, interval=0.5, what="operator idle")
        took = time.monotonic() - start
        got = await count_converged(kube, ns)
        assert got == want, f"converged {got}, expected {want}"
        assert op.process is not None
        print(
            f"operator start (process up, liveness answering): {ready:.1f}s;"
            f" CPU used: {cpu_seconds(op):.1f}s; RSS when converged: {rss_mb(op.process.pid):.0f} MB"
        )
        print(
            f"converged {args.users} users / {args.tokens} tokens / {allocs} allocations in {took:.1f}s:"
            f" {crs / took:.0f} custom resources/s, {args.users / took:.0f} users/s"
        )
        print(f"baseline: {base_rate:.0f} ConfigMap creations/s straight to the API server")
        print(
            f"ratio users/s / baseline writes/s: {args.users / took / base_rate:.2f}"
            " (about 5 writes per user)"
        )

        t1 = time.monotonic()
        await seed(kube, ns, args.burst, args.tokens, first=args.users)
        total = args.users + args.burst

        async def burst_done() -> bool:
            return (await count_converged(kube, ns))[0] == total

        await async_wait_for(burst_done, timeout=args.timeout, interval=0.2, what="burst converged")
        print(
            f"burst: {args.burst} new users (+allocations) created and compiled"
            f" in {time.monotonic() - t1:.1f}s"
        )

        await apply_to_servable(kube, plane, ns, args, total)

        # Restart on the converged cluster: everything is re-checked, nothing needs writing.
        before = await route_versions(kube, ns)
        t2 = time.monotonic()
        await asyncio.to_thread(op.restart)
        await async_wait_for(idle, timeout=args.timeout, interval=0.2, what="idle after restart")
        rewritten = sum(1 for k, v in (await route_versions(kube, ns)).items() if before.get(k) != v)
        print(
            f"restart on the converged cluster: idle again after {time.monotonic() - t2:.1f}s,"
            f" {rewritten} of {len(before)} compiled objects rewritten"
        )
    finally:
        await kube.close()


async def hands_out(http: httpx.AsyncClient, url: str, token: str) -> bool:
    """Whether the proxy hands a token out to the holder of ``token`` (the plugin's first need)."""
    r = await http.get(f"{url}/api/tokens", headers={"Authorization": f"Bearer {token}"})
    return r.status_code == 200 and bool(r.json().get("tokens"))


async def apply_to_servable(
    kube: KubeClient, plane: ControlPlane, ns: str, args: argparse.Namespace, users: int
) -> None:
    """A proxy replica on the big cluster; then, one at a time, a new user (its own personal
    token in a Secret, one token allocated by name) timed from its creation to the first
    ``/api/tokens`` answer that hands a token out."""
    logs = Path(tempfile.mkdtemp(prefix="bench-operator-proxy-"))
    proxy = ProxyProcess(ns, plane.kubeconfig, logs, {"access_log": "false", "log_level": "WARNING"})
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(proxy.wait_ready, 600)
        print(
            f"proxy replica ready on the cluster of {users} users in {time.monotonic() - t0:.1f}s", flush=True
        )
        took = []
        async with httpx.AsyncClient(timeout=10) as http:
            for k in range(args.changes):
                name, token = f"late-{k}", secrets.token_hex(32)
                await kube.create(
                    core_path(ns, "secrets"),
                    {"metadata": {"name": f"{name}-pt"}, "stringData": {"token": token}},
                )
                start = time.monotonic()
                spec = {"email": f"{name}@example.com", "personalTokenSecretRef": {"name": f"{name}-pt"}}
                body = {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_USER,
                    "metadata": {"name": name},
                    "spec": spec,
                }
                await kube.create(cr_path(ns, c.PLURAL_USER), body)
                alloc = {"user": name, "tokens": [f"tok-{k % args.tokens}"]}
                body = {
                    "apiVersion": c.API_VERSION,
                    "kind": c.KIND_ALLOCATION,
                    "metadata": {"name": name},
                    "spec": alloc,
                }
                await kube.create(cr_path(ns, c.PLURAL_ALLOCATION), body)

                servable = functools.partial(hands_out, http, proxy.url, token)
                await async_wait_for(servable, timeout=120, interval=0.05, what=f"{name} servable")
                took.append(time.monotonic() - start)
        print(
            f"apply -> servable (new user + allocation, {len(took)} in a row):"
            f" median {statistics.median(took):.2f}s, max {max(took):.2f}s"
            f" ({', '.join(f'{t:.2f}' for t in took)})"
        )
    finally:
        proxy.stop()


async def route_versions(kube: KubeClient, ns: str) -> dict[str, str]:
    """resourceVersion of every compiled object (user routes and upstream routes)."""
    out = {}
    for plural in ("secrets",):
        page = await kube.get(core_path(ns, plural) + f"?labelSelector={c.LABEL_MANAGED_BY}%3D{c.MANAGED_BY}")
        for item in (page or {}).get("items", []):
            out[f"{plural}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--burst", type=int, default=100, help="users created while the operator runs")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--changes", type=int, default=5, help="apply -> servable samples")
    args = parser.parse_args()

    plane = ControlPlane.launch(binaries.find())
    holder: list[OperatorProcess] = []
    try:
        run_kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=plane.kubeconfig)
        run_kubectl("wait", "--for=condition=Established", "crd", "--all", kubeconfig=plane.kubeconfig)
        asyncio.run(measure(args, plane, holder))
    finally:
        for op in holder:
            op.stop()
        plane.stop()


if __name__ == "__main__":
    main()
