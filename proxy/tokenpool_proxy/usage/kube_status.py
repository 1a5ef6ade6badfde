"""The status store over the proxy's Kubernetes client (:mod:`tokenpool.kube.client`).

Writes are JSON merge patches of the ``/status`` subresource that carry
``metadata.resourceVersion``, so the API server applies one only if the object did not change
since it was read (else 409 → :class:`~.store.Conflict`). Reads are the watch of
:mod:`.status_watch`, and a GET of one object after a conflict.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tokenpool.kube.client import MERGE_PATCH, KubeClient, KubeError, cr_path

from .status_watch import StatusWatch
from .store import PLURALS, Conflict, Deleted, StatusSink, Stored, stored_of


class KubeStatusStore:
    """Over the proxy's Kubernetes client (its timeouts bound a hung API server's hold on the
    flush, and on the final flush at shutdown)."""

    def __init__(
        self, kube: KubeClient, namespace: str, watch_timeout_s: int = 1800, retry_s: float = 1.0
    ) -> None:
        self._kube = kube
        self._ns = namespace
        self.watcher = StatusWatch(kube, namespace, watch_timeout_s, retry_s)  # (readiness reads it)

    async def get(self, kind: str, name: str) -> Stored:
        body = await self._kube.get(cr_path(self._ns, PLURALS[kind], name))
        if body is None:
            raise Deleted(name)
        return stored_of(body)

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored:
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            body = await self._kube.request(
                "PATCH", cr_path(self._ns, PLURALS[kind], name, "status"), patch, MERGE_PATCH
            )
        except KubeError as exc:
            if exc.status == 409:
                raise Conflict(name) from None
            raise
        if body is None:
            raise Deleted(name)
        return stored_of(body)

    async def watch(self, sink: StatusSink, first_round: asyncio.Event) -> None:
        await self.watcher.run(sink, first_round)
