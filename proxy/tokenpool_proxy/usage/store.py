"""Reading and writing the status of PoolUsers and UpstreamTokens: the status loop's only I/O.

A protocol so the flush logic is tested against the real API server and, for its retry paths,
against a scripted store; :class:`~.kube_status.KubeStatusStore` is the real one. Reads are a
watch of both kinds into the replica's :class:`~.status_cache.StatusCache`
(:mod:`.status_watch`: one long-lived request per kind), plus a GET of one object when a write
found the cache stale. Writes are JSON merge patches of the ``/status`` subresource carrying
``metadata.resourceVersion``: the API server applies one only if the object did not change since
it was read (else 409), which makes read-add-write safe between replicas and against the
operator's own status writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, PLURAL_UPSTREAM, PLURAL_USER

PLURALS = {KIND_USER: PLURAL_USER, KIND_UPSTREAM: PLURAL_UPSTREAM}


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class Deleted(Exception):
    """The object no longer exists (HTTP 404)."""


@dataclass(frozen=True)
class Stored:
    name: str
    resource_version: str
    status: dict[str, Any]
    uid: str = ""


class StatusSink(Protocol):
    """Where the watch puts what it sees (:class:`~.status_cache.StatusCache`)."""

    def put(self, kind: str, stored: Stored, own_write: bool = False) -> None: ...

    def delete(self, kind: str, name: str, resource_version: str = "") -> None: ...

    def retain(self, kind: str, names: set[str]) -> None: ...


class StatusStore(Protocol):
    async def get(self, kind: str, name: str) -> Stored: ...

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored: ...

    async def watch(self, sink: StatusSink, first_round: asyncio.Event) -> None:
        """Keep ``sink`` up to date until cancelled; set ``first_round`` once every kind was
        listed or failed to be listed once."""
        ...


def stored_of(obj: Any) -> Stored:
    meta = obj["metadata"]
    return Stored(meta["name"], meta["resourceVersion"], obj.get("status") or {}, meta.get("uid", ""))
