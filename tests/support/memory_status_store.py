"""An in-memory stand-in for the API server's status subresource, for the flush logic's unit tests.

Objects with resourceVersions; a patch with a stale version is a Conflict (like a 409). Every
subscribed status cache is told of each change at once (a watch without lag); a stale cache is
made by changing ``objects`` behind the caches' back.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tokenpool_proxy.usage.status_cache import StatusCache
from tokenpool_proxy.usage.store import Conflict, Deleted, Stored

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER


class MemoryStore:
    """Objects with resourceVersions; a patch with a stale version is a Conflict (like a 409)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.patches = 0
        self.gets = 0
        self.before_patch: list[Any] = []  # hooks run before a patch is applied (interleavings)
        self.fail_patches = 0
        self.caches: list[StatusCache] = []

    def _stored(self, kind: str, name: str) -> Stored:
        rv, st = self.objects[(kind, name)]
        return Stored(name, str(rv), copy.deepcopy(st), uid=f"uid-{name}")

    def _tell(self, kind: str, name: str) -> None:
        for cache in self.caches:
            cache.put(kind, self._stored(kind, name))

    def subscribe(self, cache: StatusCache) -> None:
        """What a list and a watch would give: every object now, every change from now on."""
        self.caches.append(cache)
        for kind in (KIND_USER, KIND_UPSTREAM):
            names = {n for (k, n) in self.objects if k == kind}
            for name in names:
                cache.put(kind, self._stored(kind, name))
            cache.retain(kind, names)

    def create(self, kind: str, name: str, status: dict[str, Any] | None = None) -> None:
        self.objects[(kind, name)] = (1, status or {})
        self._tell(kind, name)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return self.objects[(kind, name)][1]

    async def get(self, kind: str, name: str) -> Stored:
        self.gets += 1
        if (kind, name) not in self.objects:
            raise Deleted(name)
        return self._stored(kind, name)

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored:
        while self.before_patch:
            await self.before_patch.pop(0)()
        if self.fail_patches:
            self.fail_patches -= 1
            raise RuntimeError("API server unavailable")
        if (kind, name) not in self.objects:
            raise Deleted(name)
        rv, st = self.objects[(kind, name)]
        if str(rv) != resource_version:
            raise Conflict(name)
        new = {**st, **copy.deepcopy(status)}
        self.objects[(kind, name)] = (rv + 1, new)
        self.patches += 1
        self._tell(kind, name)  # the watch event may arrive before the answer: it must wait
        return self._stored(kind, name)

    async def watch(self, sink: StatusCache, first_round: asyncio.Event) -> None:
        self.subscribe(sink)
        first_round.set()
        await asyncio.Event().wait()
