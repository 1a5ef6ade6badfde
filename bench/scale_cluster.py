"""A big pool for the scale benchmarks: N PoolUsers and M UpstreamTokens, each with 31 days of
usage in its status, and the compiled routes the proxy serves them from (as the operator would
write them — owned by their custom resources — so no operator has to run).

Seeding is one pass of plain API calls with the project's client at a fixed concurrency: a
custom resource, its status (the ``/status`` subresource ignores the status of a create, so that
is a second write) and its compiled route — about 3.3 writes per user. User ``i`` holds the
personal token :func:`personal_token` and two tokens, ``tok-(i % M)`` and ``tok-((7i + M/2) % M)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenpool.contract import compiled as c
from tokenpool.contract.status_fields import HISTORY_DAYS
from tokenpool.kube.client import KubeClient, core_path, cr_path


def personal_token(i: int) -> str:
    return hashlib.sha256(f"bench-user-{i}".encode()).hexdigest()


def tokens_of(i: int, tokens: int) -> list[str]:
    first, second = i % tokens, (7 * i + tokens // 2) % tokens
    return [f"tok-{first}"] + ([f"tok-{second}"] if second != first else [])


def usage_doc(seed: int, today: datetime, by_upstream: list[str] | None) -> dict[str, Any]:
    """31 days of plausible counts, today included (the wire shape of status.usage)."""

    def counts(n: int) -> dict[str, int]:
        return {
            "requests": n,
            "successes": n - n // 50,
            "errors": n // 50,
            "promptTokens": n * 1200,
            "completionTokens": n * 350,
        }

    daily = []
    for back in range(HISTORY_DAYS - 1, -1, -1):
        date = (today - timedelta(days=back)).strftime("%Y-%m-%d")
        daily.append({"date": date, **counts(40 + (seed * 31 + back) % 160)})
    total = {k: sum(d[k] for d in daily) * 4 for k in counts(0)}  # older history than 31 days
    doc: dict[str, Any] = {
        "total": total,
        "today": daily[-1],
        "minute": {"start": today.strftime("%Y-%m-%dT%H:%MZ"), "requests": 1},
        "lastUsedAt": today.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "daily": daily,
    }
    if by_upstream is not None:
        doc["todayByUpstream"] = [{"name": n, **counts(daily[-1]["requests"] // 2)} for n in by_upstream]
    return doc


async def bounded(n: int, concurrency: int, make: Callable[[int], Awaitable[None]]) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def seed(kube: KubeClient, ns: str, users: int, tokens: int, upstream_url: str) -> None:
    """Create the namespace, the tokens and the users with their status and compiled routes."""
    await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    today = datetime.now(UTC)

    async def resource(
        kind: str, plural: str, name: str, spec: dict[str, Any], usage: dict[str, Any]
    ) -> dict[str, Any]:
        """The custom resource, then its status; the created object (its uid owns the route)."""
        body = {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        created = await kube.create(cr_path(ns, plural), body)
        assert created is not None
        await kube.merge_patch(cr_path(ns, plural, name, "status"), {"status": {"usage": usage}})
        return created

    async def token(j: int) -> None:
        name = f"tok-{j}"
        spec = {"endpoint": upstream_url, "credentialSecretRef": {"name": f"cred-{j}"}}
        owner = await resource(c.KIND_UPSTREAM, c.PLURAL_UPSTREAM, name, spec, usage_doc(j, today, None))
        route = c.UpstreamRoute(
            name=name, endpoint=f"{upstream_url}{name}/", token=f"{j:064x}", max_concurrency=1000
        )
        data = {c.UPSTREAM_ROUTE_KEY: c.dump(route)}
        meta = c.compiled_metadata(c.upstream_route_name(name), c.ROUTE_UPSTREAM, owner, data)
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await kube.create(core_path(ns, "secrets"), {"metadata": meta, "data": encoded})

    async def user(i: int) -> None:
        name, allocated = f"user-{i}", tokens_of(i, tokens)
        spec = {"email": f"u{i}@example.com"}
        owner = await resource(c.KIND_USER, c.PLURAL_USER, name, spec, usage_doc(i, today, allocated))
        route = c.UserRoute(
            user=name,
            uid=owner["metadata"]["uid"],
            token_sha256=c.hash_personal_token(personal_token(i)),
            upstreams=tuple(c.AllocatedUpstream(name=n) for n in allocated),
        )
        data = {c.USER_ROUTE_KEY: c.dump(route)}
        meta = c.compiled_metadata(c.user_route_name(name), c.ROUTE_USER, owner, data)
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await kube.create(core_path(ns, "secrets"), {"metadata": meta, "data": encoded})

    await bounded(tokens, 32, token)
    await bounded(users, 32, user)
