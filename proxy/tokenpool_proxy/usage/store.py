"""Reading and writing the status of PoolUsers and UpstreamTokens: the flusher's only I/O.

A protocol so the flush logic is tested against the real API server and, for its retry paths,
against a scripted store; :class:`KubeStatusStore` is the real one. Writes are JSON merge patches
of the ``/status`` subresource carrying ``metadata.resourceVersion``: the API server applies one
only if the object did not change since it was read (else 409), which makes read-add-write safe
between replicas and against the operator's own status writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, PLURAL_UPSTREAM, PLURAL_USER
from tokenpool.kube.client import MERGE_PATCH, KubeClient, KubeError, cr_path

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


class StatusStore(Protocol):
    async def list(self, kind: str) -> list[Stored]: ...

    async def get(self, kind: str, name: str) -> Stored: ...

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored: ...


def _stored(obj: Any) -> Stored:
    meta = obj["metadata"]
    return Stored(meta["name"], meta["resourceVersion"], obj.get("status") or {})


class KubeStatusStore:
    """Over the proxy's Kubernetes client (its timeouts bound a hung API server's hold on the
    flush, and on the final flush at shutdown)."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._kube = kube
        self._ns = namespace

    async def list(self, kind: str) -> list[Stored]:
        body = await self._kube.list(cr_path(self._ns, PLURALS[kind]))
        return [_stored(item) for item in body["items"]]

    async def get(self, kind: str, name: str) -> Stored:
        body = await self._kube.get(cr_path(self._ns, PLURALS[kind], name))
        if body is None:
            raise Deleted(name)
        return _stored(body)

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
        return _stored(body)
