"""Console page render times at pool size: 10,000 users (default) with a month of daily usage in
their status, upstream tokens and one allocation per user, on a real etcd + kube-apiserver.

The console serves every page from its watch-backed mirror; the baseline measured in the same run
is what a page would cost without it: the raw list call of all PoolUsers from the API server
(what search and sorting over a pool need), and one API-server page of 50 (what paging without
search costs). Printed per page: median and p95 of sequential requests, and the ratio of the raw
list call to the median (how many page renders fit in one list call). Also: the console's time
to ready (its first full list of everything), its memory, and the statistics computation
without the cache (in this process, on the same objects).

    .venv/bin/python -m bench.bench_console [--users 10000] [--tokens 100] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.console_fixtures import ConsoleProcess
from tests.support.kubectl import run_kubectl
from tokenpool.contract import compiled as c
from tokenpool.contract.status_fields import utc_date
from tokenpool.dev import binaries
from tokenpool.dev.controlplane import ControlPlane
from tokenpool.kube.client import KubeClient, cr_path

ROOT = Path(__file__).resolve().parents[1]
NS = "bench-console"


async def bounded(n: int, concurrency: int, make: Any) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - start


def usage(seed: int, days: int, upstreams: list[str] | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    daily = []
    for back in range(days - 1, -1, -1):
        requests = (seed * 7 + back * 13) % 40
        errors = requests // 15
        daily.append(
            {
                "date": utc_date(now - timedelta(days=back)),
                "requests": requests,
                "successes": requests - errors,
                "errors": errors,
                "promptTokens": requests * 120,
                "completionTokens": requests * 300,
            }
        )
    total = {
        k: sum(d[k] for d in daily)
        for k in ("requests", "successes", "errors", "promptTokens", "completionTokens")
    }
    doc: dict[str, Any] = {
        "total": total,
        "today": dict(daily[-1]),
        "daily": daily,
        "lastUsedAt": f"{daily[-1]['date']}T08:00:00Z",
    }
    if upstreams is not None:
        doc["todayByUpstream"] = [{"name": u, "requests": 1, "successes": 1} for u in upstreams]
    return doc


def standing(i: int) -> dict[str, Any]:
    """An account's standing as the operator writes it: every 10th spent (retired), every 7th
    running low (renewal due)."""
    remaining = 0 if i % 10 == 0 else 50 if i % 7 == 0 else 1000 - i
    account = {
        "plan": "Developer",
        "active": True,
        "expiresAt": "2027-03-01T00:00:00Z",
        "depleted": remaining == 0,
        "creditsRemaining": remaining,
        "creditsTotal": 1000,
        "checkedAt": "2026-11-29T20:00:00Z",
        "nextCheckAt": "2026-11-30T02:00:00Z",
        "unknown": [],
    }
    when = "2026-11-29T20:00:00Z"
    active = ("False", "Depleted") if remaining == 0 else ("True", "Active")
    due = ("True", "CreditsLow") if remaining == 50 else ("False", "NotDue")
    conditions = [
        {"type": t, "status": st, "reason": r, "message": r, "lastTransitionTime": when}
        for t, (st, r) in (("Ready", ("True", "Ready")), ("AccountActive", active), ("RenewalDue", due))
    ]
    return {"account": account, "conditions": conditions}


async def seed(kube: KubeClient, users: int, tokens: int, days: int) -> tuple[str, float]:
    """The pool, as the operator and the proxy would have left it; returns a pool admin's personal
    token (its sha256 published in status like the operator's) and the seconds taken."""
    started = time.monotonic()
    await kube.create("/api/v1/namespaces", {"metadata": {"name": NS}})

    async def token(i: int) -> None:
        name = f"acct-{i:03d}"
        spec = {
            "endpoint": f"https://d{i % 20}.api.augmentcode.com/",
            "credentialSecretRef": {"name": f"cred-{i}"},
            "description": f"Account {i}",
        }
        await kube.create(
            cr_path(NS, c.PLURAL_UPSTREAM),
            {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND_UPSTREAM,
                "metadata": {"name": name, "labels": {"tokenpool.io/pool": f"p{i % 10}"}},
                "spec": spec,
            },
        )
        status = {"usage": usage(i, days, None), "allocations": users // tokens, **standing(i)}
        await kube.merge_patch(cr_path(NS, c.PLURAL_UPSTREAM, name, "status"), {"status": status})

    async def user(i: int) -> None:
        name = f"user-{i:05d}"
        spec = {
            "displayName": f"User {i}",
            "email": f"user{i}@example.com",
            "role": "Admin" if i == 0 else "User",
            "limits": {"requestsPerDay": 500},
        }
        await kube.create(
            cr_path(NS, c.PLURAL_USER),
            {"apiVersion": c.API_VERSION, "kind": c.KIND_USER, "metadata": {"name": name}, "spec": spec},
        )
        picks = [f"acct-{(i + k) % tokens:03d}" for k in range(2)]
        await kube.merge_patch(
            cr_path(NS, c.PLURAL_USER, name, "status"),
            {"status": {"usage": usage(i, days, picks), "allocatedTokens": 2}},
        )
        alloc = {"user": name, "selector": {"matchLabels": {"tokenpool.io/pool": f"p{i % 10}"}}, "count": 2}
        await kube.create(
            cr_path(NS, c.PLURAL_ALLOCATION),
            {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND_ALLOCATION,
                "metadata": {"name": f"{name}-shared"},
                "spec": alloc,
            },
        )

    await bounded(tokens, 16, token)
    done = 0

    async def counted(i: int) -> None:
        nonlocal done
        await user(i)
        done += 1
        if done % 1000 == 0:
            print(f"  seeded {done} users ({time.monotonic() - started:.0f}s)", file=sys.stderr)

    await bounded(users, 16, counted)
    personal = secrets.token_hex(32)
    await kube.merge_patch(  # as the operator publishes it: the console's personal-token logins
        cr_path(NS, c.PLURAL_USER, "user-00000", "status"),
        {"status": {"personalTokenSha256": c.hash_personal_token(personal)}},
    )
    return personal, time.monotonic() - started


async def baselines(kube: KubeClient, rounds: int) -> dict[str, float]:
    full, page = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        body = await kube.list(cr_path(NS, c.PLURAL_USER))
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        await kube.get(cr_path(NS, c.PLURAL_USER), {"limit": "50"})
        page.append(time.perf_counter() - t)
    print(f"  listed {len(body['items'])} PoolUsers", file=sys.stderr)
    return {
        "raw list of all PoolUsers": statistics.median(full),
        "one API-server page of 50": statistics.median(page),
    }


def in_process_stats(objects: list[dict[str, Any]]) -> tuple[float, float]:
    """(seconds to project the users into the mirror's rows, seconds for one statistics
    computation without the cache)."""
    from tokenpool_console import pool_stats
    from tokenpool_console.mirror import NamespacePool
    from tokenpool_console.projections import user_row
    from tokenpool_console.tallies import utc_today

    t = time.perf_counter()
    pool = NamespacePool(NS)
    pool.replace_users([user_row(o) for o in objects])
    project = time.perf_counter() - t
    t = time.perf_counter()
    pool_stats.compute(pool, utc_today(), 30, 3, 10)
    return project, time.perf_counter() - t


def pages(users: int) -> list[tuple[str, str]]:
    middle, last_page = f"user-{users // 2:05d}", max(1, -(-users // 50))
    return [
        ("overview (cards, 30-day chart)", "/overview"),
        ("users, first page", "/users"),
        ("users, search by name", f"/users/-/table?q={middle[:-1]}"),
        ("users, last page", f"/users/-/table?page={last_page}"),
        ("users, sorted by requests", "/users/-/table?sort=requests"),
        ("a user's page", f"/users/{middle}"),
        ("upstream tokens", "/tokens"),
        ("allocations, first page", "/allocations"),
        ("allocations, search a user", f"/allocations/-/table?q={middle}"),
        ("statistics (30 days)", "/stats"),
        ("API: users page (JSON)", "/api/admin/users?perPage=50"),
        ("API: statistics (JSON)", "/api/admin/stats"),
        ("API: users CSV export (all)", "/api/admin/export/users.csv"),
    ]


def measure(
    console: ConsoleProcess, token: str, rounds: int, users: int
) -> list[tuple[str, float, float, int]]:
    client = httpx.Client(base_url=console.url, timeout=120)
    login = client.post("/api/auth/login", json={"token": token})
    assert login.status_code == 200, login.text
    out = []
    for label, path in pages(users):
        times, size = [], 0
        for _ in range(rounds):
            t = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - t)
            assert response.status_code == 200, (path, response.text[:500])
            size = len(response.content)
        times.sort()
        out.append((label, statistics.median(times), times[int(0.95 * (len(times) - 1))], size))
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(args: argparse.Namespace, plane: ControlPlane, tmp: Path) -> None:
    async with KubeClient.from_environment(plane.kubeconfig, limit=32) as kube:
        print(
            f"seeding {args.users} users, {args.tokens} tokens, {args.users} allocations ...", file=sys.stderr
        )
        token, seeded = await seed(kube, args.users, args.tokens, args.days)
        print(f"  seeded in {seeded:.0f}s", file=sys.stderr)
        base = await baselines(kube, 5)
        objects = (await kube.list(cr_path(NS, c.PLURAL_USER)))["items"]
    project, compute = in_process_stats(objects)
    started = time.monotonic()
    console = ConsoleProcess(NS, plane.kubeconfig, tmp, {"log_level": "WARNING"})
    try:
        console.wait_ready(timeout=600)
        ready = time.monotonic() - started
        results = measure(console, token, args.rounds, args.users)
        memory = rss_mib(console.process.pid)
    finally:
        console.stop()
    raw, page = base["raw list of all PoolUsers"], base["one API-server page of 50"]
    size = f"{args.users:,} users, {args.tokens} upstream tokens, {args.users:,} allocations"
    print(f"\nConsole at {size}, {args.days} days of history each")
    print(
        f"(same-run baselines: raw list of all PoolUsers {raw * 1000:.0f} ms; one API-server page of 50 ",
        end="",
    )
    print(f"{page * 1000:.1f} ms)\n")
    print("| page | median | p95 | size | raw list / median |\n|---|---|---|---|---|")
    for label, median, p95, length in results:
        times = f"{median * 1000:.1f} ms | {p95 * 1000:.1f} ms"
        print(f"| {label} | {times} | {length / 1024:.0f} KiB | {raw / median:.1f}x |")
    print(f"\nconsole ready (first list + watch of everything) in {ready:.1f}s; RSS {memory:.0f} MiB")
    print(f"in-process: projecting {len(objects):,} users {project * 1000:.0f} ms; ", end="")
    print(f"statistics uncached {compute * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    import tempfile

    plane = ControlPlane.launch(binaries.find())
    try:
        run_kubectl("apply", "--server-side", "-f", str(ROOT / "crds"), kubeconfig=plane.kubeconfig)
        run_kubectl("wait", "--for=condition=Established", "crd", "--all", kubeconfig=plane.kubeconfig)
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(args, plane, Path(tmp)))
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
