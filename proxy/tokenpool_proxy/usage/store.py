"""Reading and writing the status of PoolUsers and UpstreamTokens: the flusher's only I/O.

A protocol so the flush logic is tested against the real API server and, for its retry paths,
against a scripted store; :class:`KubeStatusStore` is the real one. Writes are JSON merge patches
of the ``/status`` subresource carrying ``metadata.resourceVersion``: the API server applies one
only if the object did not change since it was read (else 409), which makes read-add-write safe
between replicas and against the operator's own status writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tokenpool.contract.compiled import GROUP, KIND_UPSTREAM, KIND_USER, PLURAL_UPSTREAM, PLURAL_USER, VERSION

PLURALS = {KIND_USER: PLURAL_USER, KIND_UPSTREAM: PLURAL_UPSTREAM}
# Seconds per API call: a hung API server must not hold the flush (and the final flush) forever.
TIMEOUT_S = 15


class Conflict(Exception):
    """The object changed since it was read (HTTP 409)."""


class Gone(Exception):
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
    """The official client (synchronous) run in worker threads: a handful of calls per interval."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self._ns = namespace

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str, namespace: str) -> KubeStatusStore:
        """``kubeconfig`` path, or empty: in-cluster config, then $KUBECONFIG / ~/.kube/config."""
        if kubeconfig:
            return cls(config.new_client_from_config(config_file=kubeconfig), namespace)
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.ApiClient(), namespace)

    async def list(self, kind: str) -> list[Stored]:
        body: Any = await asyncio.to_thread(
            self._api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self._ns,
            PLURALS[kind],
            _request_timeout=TIMEOUT_S,
        )
        return [_stored(item) for item in body.get("items", [])]

    async def get(self, kind: str, name: str) -> Stored:
        try:
            body = await asyncio.to_thread(
                self._api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self._ns,
                PLURALS[kind],
                name,
                _request_timeout=TIMEOUT_S,
            )
        except ApiException as exc:
            raise Gone(name) if exc.status == 404 else exc from None
        return _stored(body)

    async def patch_status(
        self, kind: str, name: str, resource_version: str, status: dict[str, Any]
    ) -> Stored:
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            body = await asyncio.to_thread(
                self._api.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                self._ns,
                PLURALS[kind],
                name,
                patch,
                _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT_S,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(name) from None
            if exc.status == 404:
                raise Gone(name) from None
            raise
        return _stored(body)
