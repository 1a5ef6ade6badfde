"""The console's view of the pool: every PoolUser, UpstreamToken and TokenAllocation of its
namespaces, and who holds which personal token, kept in memory by list + watch.

Pages and the API read only from here (a page of 10,000 users never waits on the API server);
writes go to the API server, and their answers are folded in at once (:meth:`PoolMirror.observe`)
so a person sees their own change before the watch event arrives. The pool's daily figures are
kept as running sums, updated per changed user, so statistics cost the number of days, not users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, KubeError, WatchExpired, cr_path

from .projections import AllocationRow, TokenRow, UserRow, allocation_row, token_row, user_row
from .tallies import Tally

log = logging.getLogger("tokenpool.console.mirror")


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """What a personal token opens: its PoolUser, as the operator last compiled it."""

    namespace: str
    user: str
    role: str
    suspended: bool


@dataclass
class NamespacePool:
    name: str
    users: dict[str, UserRow] = field(default_factory=dict)
    tokens: dict[str, TokenRow] = field(default_factory=dict)
    allocations: dict[str, AllocationRow] = field(default_factory=dict)
    # date -> the sum of the users' figures of that day (running sums, see module docstring)
    daily: dict[str, Tally] = field(default_factory=dict)
    version: int = 0

    def _add_daily(self, row: UserRow, sign: int) -> None:
        for day, tally in row.usage.daily:
            current = self.daily.get(day, Tally())
            self.daily[day] = current.plus(tally) if sign > 0 else current.minus(tally)

    def put_user(self, row: UserRow) -> None:
        old = self.users.get(row.name)
        if old is not None:
            self._add_daily(old, -1)
        self.users[row.name] = row
        self._add_daily(row, +1)
        self.version += 1

    def delete_user(self, name: str) -> None:
        old = self.users.pop(name, None)
        if old is not None:
            self._add_daily(old, -1)
            self.version += 1

    def replace_users(self, rows: list[UserRow]) -> None:
        self.users = {r.name: r for r in rows}
        self.daily = {}
        for row in rows:
            self._add_daily(row, +1)
        self.version += 1


def _newer(old_rv: str, new_rv: str) -> bool:
    """Whether ``new_rv`` may replace ``old_rv``: resource versions are opaque, but etcd's are
    increasing integers; anything else is taken as newer."""
    if old_rv.isdigit() and new_rv.isdigit():
        return int(new_rv) >= int(old_rv)
    return True


class PoolMirror:
    def __init__(
        self, kube: KubeClient, namespaces: list[str], watch_timeout_s: int = 300, retry_s: float = 1.0
    ):
        self.kube = kube
        self.pools = {ns: NamespacePool(ns) for ns in namespaces}
        self.routes: dict[str, RouteEntry] = {}  # sha256 of a personal token -> its user
        self._route_keys: dict[tuple[str, str], str] = {}  # (namespace, configmap) -> sha256
        self._watchers = [
            _Watcher(self, ns, kind, watch_timeout_s, retry_s) for ns in namespaces for kind in _KINDS
        ]
        self._tasks: list[asyncio.Task[None]] = []

    # --- reading ------------------------------------------------------------------------------

    def pool(self, namespace: str) -> NamespacePool:
        return self.pools[namespace]

    def route(self, token_sha256: str) -> RouteEntry | None:
        return self.routes.get(token_sha256)

    @property
    def synced(self) -> bool:
        return all(w.synced for w in self._watchers)

    # --- writing (watch events, and the console's own writes) --------------------------------

    def observe(self, kind: str, obj: dict[str, Any]) -> None:
        """Fold in an object the API server just returned for a write of this console."""
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if ns in self.pools:
            _KIND_BY_NAME[kind].put(self, ns, obj)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """An object this console just deleted."""
        if namespace in self.pools:
            _KIND_BY_NAME[kind].delete(self, namespace, {"metadata": {"name": name}})

    def _put_route(self, ns: str, obj: dict[str, Any]) -> None:
        self._put_route_entry(ns, _route(obj))

    def _put_route_entry(self, ns: str, entry: tuple[str, str, RouteEntry | None]) -> None:
        name, digest, route = entry
        self._delete_route(ns, {"metadata": {"name": name}})
        if route is not None:
            self.routes[digest] = replace(route, namespace=ns)
            self._route_keys[(ns, name)] = digest

    def _delete_route(self, ns: str, obj: dict[str, Any]) -> None:
        key = self._route_keys.pop((ns, obj["metadata"]["name"]), None)
        if key is not None:
            self.routes.pop(key, None)

    def _replace_routes(self, ns: str, entries: list[tuple[str, str, RouteEntry | None]]) -> None:
        for namespace, name in [k for k in self._route_keys if k[0] == ns]:
            self._delete_route(namespace, {"metadata": {"name": name}})
        for entry in entries:
            self._put_route_entry(ns, entry)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(w.run(), name=f"watch {w.path}") for w in self._watchers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def wait_synced(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not self.synced:  # noqa: ASYNC110 - the watch tasks set it
                await asyncio.sleep(0.05)


def _route(obj: dict[str, Any]) -> tuple[str, str, RouteEntry | None]:
    """(PoolUser name, token sha256, what it opens). The sha256 is what the operator published in
    the PoolUser's status (its own field: nothing someone else made can claim a user); role and
    suspension come from the PoolUser's spec. No published token opens nothing."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    digest = str((obj.get("status") or {}).get("personalTokenSha256") or "")
    if len(digest) != 64:
        return meta["name"], "", None
    role = "Admin" if spec.get("role") == "Admin" else "User"
    return (
        meta["name"],
        digest,
        RouteEntry(meta.get("namespace", ""), meta["name"], role, bool(spec.get("suspended"))),
    )


@dataclass(frozen=True)
class _Kind:
    """One watched kind. ``project`` turns an object into what ``replace`` keeps, so a full list
    is projected page by page (the raw objects of 10,000 users never sit in memory at once)."""

    name: str
    path: Callable[[str], str]
    selector: str
    put: Callable[[PoolMirror, str, dict[str, Any]], None]
    delete: Callable[[PoolMirror, str, dict[str, Any]], None]
    project: Callable[[dict[str, Any]], Any]
    replace: Callable[[PoolMirror, str, list[Any]], None]


def _put_row(
    attr: str, project: Callable[[dict[str, Any]], Any]
) -> Callable[[PoolMirror, str, dict[str, Any]], None]:
    def put(mirror: PoolMirror, ns: str, obj: dict[str, Any]) -> None:
        pool = mirror.pools[ns]
        row = project(obj)
        old = getattr(pool, attr).get(row.name)
        if old is not None and not _newer(old.meta.resource_version, row.meta.resource_version):
            return
        if attr == "users":
            pool.put_user(row)
        else:
            getattr(pool, attr)[row.name] = row
            pool.version += 1

    return put


def _delete_row(attr: str) -> Callable[[PoolMirror, str, dict[str, Any]], None]:
    def delete(mirror: PoolMirror, ns: str, obj: dict[str, Any]) -> None:
        pool, name = mirror.pools[ns], obj["metadata"]["name"]
        if attr == "users":
            pool.delete_user(name)
        elif getattr(pool, attr).pop(name, None) is not None:
            pool.version += 1

    return delete


def _replace_rows(attr: str) -> Callable[[PoolMirror, str, list[Any]], None]:
    def replace(mirror: PoolMirror, ns: str, rows: list[Any]) -> None:
        pool = mirror.pools[ns]
        if attr == "users":
            pool.replace_users(rows)
        else:
            setattr(pool, attr, {r.name: r for r in rows})
            pool.version += 1

    return replace


def _cr(plural: str) -> Callable[[str], str]:
    return lambda ns: cr_path(ns, plural)


_KINDS = (
    _Kind(
        "users",
        _cr(contract.PLURAL_USER),
        "",
        _put_row("users", user_row),
        _delete_row("users"),
        user_row,
        _replace_rows("users"),
    ),
    _Kind(
        "tokens",
        _cr(contract.PLURAL_UPSTREAM),
        "",
        _put_row("tokens", token_row),
        _delete_row("tokens"),
        token_row,
        _replace_rows("tokens"),
    ),
    _Kind(
        "allocations",
        _cr(contract.PLURAL_ALLOCATION),
        "",
        _put_row("allocations", allocation_row),
        _delete_row("allocations"),
        allocation_row,
        _replace_rows("allocations"),
    ),
    _Kind(
        "routes",
        _cr(contract.PLURAL_USER),
        "",
        PoolMirror._put_route,
        PoolMirror._delete_route,
        _route,
        PoolMirror._replace_routes,
    ),
)
_KIND_BY_NAME = {k.name: k for k in _KINDS}


class _Watcher:
    """List, then watch, one kind in one namespace; relist after any gap (like the proxy's)."""

    def __init__(self, mirror: PoolMirror, namespace: str, kind: _Kind, timeout_s: int, retry_s: float):
        self.mirror, self.namespace, self.kind = mirror, namespace, kind
        self.path = kind.path(namespace)
        self.params = {"labelSelector": kind.selector} if kind.selector else {}
        self.timeout_s, self.retry_s = timeout_s, retry_s
        self.synced = False

    async def _list(self) -> str:
        rows: list[Any] = []
        version = ""
        async for page in self.mirror.kube.list_pages(self.path, self.params):
            version = version or str(page["metadata"]["resourceVersion"])
            rows.extend(self.kind.project(obj) for obj in page.get("items") or ())
        self.kind.replace(self.mirror, self.namespace, rows)
        self.synced = True
        return version

    async def run(self) -> None:
        while True:
            try:
                rv = await self._list()
                while True:
                    async for event in self.mirror.kube.watch(self.path, rv, self.params, self.timeout_s):
                        obj = event.get("object") or {}
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self.kind.put(self.mirror, self.namespace, obj)
                        elif event.get("type") == "DELETED":
                            self.kind.delete(self.mirror, self.namespace, obj)
            except WatchExpired:
                log.info("watch of %s expired; relisting", self.path)
            except (KubeError, aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as exc:
                log.warning("watch of %s failed (%s); retrying", self.path, type(exc).__name__)
                await asyncio.sleep(self.retry_s)
