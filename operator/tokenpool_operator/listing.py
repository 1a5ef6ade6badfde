"""Full listings of the custom resources: the cache's starting point and the resync's check."""

from __future__ import annotations

import time
from typing import Any

from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient, cr_path
from tokenpool_operator.sync import Reconciler

KINDS = {"token": c.KIND_UPSTREAM, "user": c.KIND_USER, "allocation": c.KIND_ALLOCATION}
PLURALS = {"token": c.PLURAL_UPSTREAM, "user": c.PLURAL_USER, "allocation": c.PLURAL_ALLOCATION}


async def list_kind(kube: KubeClient, namespaces: list[str], kind: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` in the watched namespaces (all namespaces when none), paginated.
    List items carry no apiVersion/kind: they are filled in."""
    plural = PLURALS[kind]
    paths = [cr_path(ns, plural) for ns in namespaces] or [f"/apis/{c.GROUP}/{c.VERSION}/{plural}"]
    items: list[dict[str, Any]] = []
    for path in paths:
        for item in (await kube.list(path))["items"]:
            item["apiVersion"], item["kind"] = c.API_VERSION, KINDS[kind]
            items.append(item)
    return items


async def load(rec: Reconciler, namespaces: list[str]) -> int:
    """Fill the cache (and the grant book, token views) before any event is handled: decisions
    never see a partial world, e.g. an allocation without the older ones that hold the quota."""
    await rec.writer.load(namespaces)
    n = 0
    for kind in KINDS:  # tokens first: users and allocations refer to them
        for body in await list_kind(rec.kube, namespaces, kind):
            rec.observed(kind, body)
            n += 1
    return n


async def resync(rec: Reconciler, namespaces: list[str]) -> None:
    """Re-list: forget what was deleted unnoticed, refresh the owned objects from the API, and
    re-reconcile everything, so that any drift the watch missed is repaired."""
    await rec.writer.load(namespaces)
    for kind in KINDS:
        since = time.monotonic()
        bodies = await list_kind(rec.kube, namespaces, kind)
        listed = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in bodies}
        for ns, name in rec.cache.ghosts(kind, listed, since):
            rec.deleted(kind, ns, name)
        for body in bodies:
            if (body["metadata"]["namespace"], body["metadata"]["name"]) not in rec.cache.table(kind):
                rec.observed(kind, body)
    for ns, name in rec.cache.keys("token"):
        rec.token(ns, name)
    for ns, name in rec.cache.keys("user"):
        rec.user(ns, name)
    for ns, user in list(rec.cache.by_user):
        rec.user(ns, user)
