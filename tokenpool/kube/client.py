"""The one Kubernetes API client of the operator, the proxy, the console and the CLI.

A small async client on aiohttp (already in the runtime for Kopf and the proxy): JSON in and out
as plain dicts (``orjson``), the handful of verbs the project uses, list/watch as an async
iterator of events, retries with exponential backoff and jitter for what is safe to retry (the
request never reached the server, or the server said 429/503/504, honouring ``Retry-After``),
and errors that carry the status code and the API's reason and message, never a request body
(which may hold a Secret). The official ``kubernetes`` package is synchronous (a thread per call)
and its typed models cost more than the work itself at thousands of objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from tokenpool.contract.compiled import GROUP, VERSION

from .credentials import ClusterConfig, load

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is valid YAML
RETRY_STATUSES = frozenset({429, 503, 504})
log = logging.getLogger("tokenpool.kube")


class KubeError(Exception):
    """The API server refused a request: ``status`` (HTTP), ``reason`` (e.g. ``Conflict``) and
    the server's ``message`` (names objects and fields, never carries their data)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"Kubernetes API answered {status} {reason}" + (f": {message}" if message else ""))
        self.status = status
        self.reason = reason
        self.message = message


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


@dataclass(frozen=True)
class Impersonation:
    """Act as another identity (``Impersonate-User`` / ``-Group`` headers): the API server
    checks that the client's own identity may impersonate it, then authorizes and audits the
    request as that identity. Used by the console to write on behalf of a person."""

    user: str
    groups: Sequence[str] = field(default=())

    def headers(self) -> list[tuple[str, str]]:
        return [("Impersonate-User", self.user), *(("Impersonate-Group", g) for g in self.groups)]


def cr_path(ns: str, plural: str, name: str = "", sub: str = "") -> str:
    """Path of this project's custom resources (collection, object, or subresource)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{plural}"
    return path + (f"/{quote(name)}" if name else "") + (f"/{sub}" if sub else "")


def core_path(ns: str, plural: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/{plural}" + (f"/{quote(name)}" if name else "")


def _error(status: int, raw: bytes, fallback: str) -> KubeError:
    reason, message = fallback, ""
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
        doc = orjson.loads(raw)
        reason, message = str(doc.get("reason") or fallback), str(doc.get("message") or "")
    return KubeError(status, reason, message)


class KubeClient:
    """One API server, one identity, one connection pool; create it once per process.

    ``request`` answers None for 404 (the common "is it there?" case of reconcilers); every other
    error status raises :class:`KubeError`.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        limit: int = 16,
        timeout_s: float = 30.0,
        retries: int = 4,
        backoff_s: float = 0.2,
    ) -> None:
        self.config = config
        self.namespace = config.namespace
        self._host = config.server
        self._ssl = config.ssl_context()
        self._limit = limit
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = retries
        self._backoff_s = backoff_s
        self._session: aiohttp.ClientSession | None = None
        self._impersonate: Impersonation | None = None
        self._parent: KubeClient | None = None

    def impersonating(self, who: Impersonation) -> KubeClient:
        """A client for ``who`` sharing this one's connections (closing it closes nothing)."""
        view = KubeClient.__new__(KubeClient)
        view.__dict__.update(self.__dict__)
        view._impersonate, view._parent = who, self
        return view

    @classmethod
    def from_environment(
        cls, kubeconfig: str | None = None, context: str | None = None, **kw: Any
    ) -> KubeClient:
        """Configuration found like kubectl finds it (:func:`tokenpool.kube.credentials.load`)."""
        return cls(load(kubeconfig, context), **kw)

    def _open(self) -> aiohttp.ClientSession:
        if self._parent is not None:
            return self._parent._open()
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._parent is None:
            await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str | None) -> list[tuple[str, str]]:
        headers = [("Accept", JSON)]
        if content_type:
            headers.append(("Content-Type", content_type))
        auth = await self.config.authorization()
        if auth:
            headers.append(("Authorization", auth))
        if self._impersonate is not None:
            headers.extend(self._impersonate.headers())
        return headers

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), 30.0)
        return self._backoff_s * 2**attempt * (0.5 + random.random())  # noqa: S311 - jitter

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = JSON,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """The decoded answer, or None for 404. Other errors raise :class:`KubeError`."""
        data = orjson.dumps(body) if body is not None else None
        attempt = 0
        while True:
            headers = await self._headers(content_type if data is not None else None)
            try:
                async with self._open().request(
                    method,
                    self._host + path,
                    data=data,
                    params=params,
                    headers=headers,
                    server_hostname=self.config.tls_server_name,
                ) as resp:
                    raw = await resp.read()
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt >= self._retries or (method == "POST" and not _not_sent(exc)):
                    raise
                log.debug("%s %s failed (%s); retrying", method, path, type(exc).__name__)
                await asyncio.sleep(self._delay(attempt, None))
                attempt += 1
                continue
            if status == 404:
                return None
            if status == 401 and self.config.token is not None and attempt < self._retries:
                self.config.token.invalidate()  # a rotated token file or an expired exec credential
                attempt += 1
                continue
            if status in RETRY_STATUSES and attempt < self._retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
                attempt += 1
                continue
            if status >= 400:
                raise _error(status, raw, "HTTP error")
            return orjson.loads(raw) if raw else {}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        return await self.request("GET", path, params=params)

    async def list(
        self, path: str, params: Mapping[str, str] | None = None, page: int = 500
    ) -> dict[str, Any]:
        """All items of a collection, fetched in pages; ``metadata.resourceVersion`` of the list
        (to start a watch from) is the first page's."""
        first: dict[str, Any] | None = None
        items: list[dict[str, Any]] = []
        async for body in self.list_pages(path, params, page):
            first = first or body
            items.extend(body.get("items") or ())
        assert first is not None
        return {**first, "items": items}

    async def list_pages(
        self, path: str, params: Mapping[str, str] | None = None, page: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """The list call's pages one by one, for callers that keep less than the whole list in
        memory; the first page's ``metadata.resourceVersion`` is the list's."""
        query = {**(params or {}), "limit": str(page)}
        while True:
            body = await self.get(path, query)
            if body is None:
                raise KubeError(404, "NotFound", f"{path} is not served (is the CRD installed?)")
            yield body
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("POST", path, body)

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self.request("PATCH", path, body, MERGE_PATCH)

    async def apply(self, path: str, body: dict[str, Any], manager: str) -> dict[str, Any] | None:
        """Server-side apply (forcing conflicts: the caller owns what it applies)."""
        params = {"fieldManager": manager, "force": "true"}
        return await self.request("PATCH", path, body, APPLY_PATCH, params)

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None, timeout_s: int = 300
    ) -> AsyncIterator[dict[str, Any]]:
        """Events (``{"type", "object"}``) of one watch call from ``resource_version``, bookmarks
        included, until the server ends it (after about ``timeout_s``). Raises
        :class:`WatchExpired` when the version is too old; any other failure ends the iteration
        with an exception, after which the caller lists again."""
        query = {
            **(params or {}),
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_s),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s + 30)
        async with self._open().get(
            self._host + path,
            params=query,
            headers=await self._headers(None),
            timeout=timeout,
            server_hostname=self.config.tls_server_name,
        ) as resp:
            if resp.status == 410:
                raise WatchExpired()
            if resp.status != 200:
                if resp.status == 401 and self.config.token is not None:
                    self.config.token.invalidate()
                raise _error(resp.status, await resp.read(), "watch failed")
            async for line in resp.content:
                if not line.strip():
                    continue
                event = orjson.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    if status.get("code") == 410:
                        raise WatchExpired()
                    raise KubeError(int(status.get("code") or 500), str(status.get("reason") or "WatchError"))
                yield event


def _not_sent(exc: BaseException) -> bool:
    """Whether a failed request certainly never reached the server (safe to send again)."""
    return isinstance(exc, aiohttp.ClientConnectorError)
