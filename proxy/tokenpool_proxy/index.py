"""The in-memory route index: what the request path reads, never the API server.

Two maps, fed by the watch (route_watch.py) or directly by tests:
``sha256(personal token) → UserRoute`` and ``upstream name → UpstreamRoute``. Each is keyed
internally by the Kubernetes object name too, so a DELETE event (which carries only the object)
removes exactly what that object had added, and a full relist can replace a whole kind at once:
that is how a lost watch resyncs without keeping objects deleted during the gap.

**Only the operator's routes are served** (``verify_owners``, on in the running proxy): a route
object counts only when its controller ownerReference names the PoolUser / UpstreamToken the
route is about *and* carries that object's current uid, as the proxy's own watch of the custom
resources reports it (:meth:`put_owner`). A hand-made Secret labelled like a route, or one left
behind by a deleted user, is never served. Two users whose routes claim the same personal token
are both refused: the token would otherwise authenticate as whichever was indexed last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER, UpstreamRoute, UserRoute

log = logging.getLogger("tokenpool.proxy.index")
Listener = Callable[[str, UpstreamRoute | None, UpstreamRoute | None], None]


class RouteIndex:
    def __init__(self, verify_owners: bool = False) -> None:
        self.verify_owners = verify_owners
        # object name → (route, uid of the controller ownerReference; "" when none)
        self._users: dict[str, tuple[UserRoute, str]] = {}
        self._upstreams_by_object: dict[str, tuple[UpstreamRoute, str]] = {}
        self._by_hash: dict[str, UserRoute] = {}
        self._upstreams: dict[str, UpstreamRoute] = {}
        # kind → custom resource name → uid: who may own routes (fed by the CR watch).
        self._owners: dict[str, dict[str, str]] = {KIND_USER: {}, KIND_UPSTREAM: {}}
        self.owners_synced: set[str] = set()
        self.users_synced = False
        self.upstreams_synced = False
        # Called as ``(name, old route, new route)`` whenever an upstream's served route changes
        # or disappears (new None), so health can forget verdicts a new credential invalidates
        # and drop what it keeps about tokens that are gone.
        self.upstream_listeners: list[Listener] = []

    @property
    def ready(self) -> bool:
        owners = not self.verify_owners or self.owners_synced >= {KIND_USER, KIND_UPSTREAM}
        return self.users_synced and self.upstreams_synced and owners

    # -- reads (request path) -------------------------------------------------------------
    def user_by_token_hash(self, token_sha256: str) -> UserRoute | None:
        return self._by_hash.get(token_sha256)

    def upstream(self, name: str) -> UpstreamRoute | None:
        return self._upstreams.get(name)

    def users(self) -> list[UserRoute]:
        return list(self._by_hash.values())

    def upstreams(self) -> list[UpstreamRoute]:
        return list(self._upstreams.values())

    def counts(self) -> dict[str, int]:
        return {"users": len(self._by_hash), "upstreams": len(self._upstreams)}

    # -- writes (watch) -------------------------------------------------------------------
    def put_user(self, obj_name: str, route: UserRoute, owner_uid: str = "") -> None:
        self._users[obj_name] = (route, owner_uid)
        self._rebuild_hashes()

    def delete_user(self, obj_name: str) -> None:
        if self._users.pop(obj_name, None) is not None:
            self._rebuild_hashes()

    def replace_users(self, routes: Iterable[tuple[str, UserRoute] | tuple[str, UserRoute, str]]) -> None:
        self._users = {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in routes}
        self._rebuild_hashes()
        self.users_synced = True

    def put_upstream(self, obj_name: str, route: UpstreamRoute, owner_uid: str = "") -> None:
        before = self._upstreams
        self._upstreams_by_object[obj_name] = (route, owner_uid)
        self._rebuild_upstreams()
        self._notify(before)

    def delete_upstream(self, obj_name: str) -> None:
        if obj_name in self._upstreams_by_object:
            before = self._upstreams
            del self._upstreams_by_object[obj_name]
            self._rebuild_upstreams()
            self._notify(before)

    def replace_upstreams(
        self, routes: Iterable[tuple[str, UpstreamRoute] | tuple[str, UpstreamRoute, str]]
    ) -> None:
        before = self._upstreams
        self._upstreams_by_object = {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in routes}
        self._rebuild_upstreams()
        self.upstreams_synced = True
        self._notify(before)

    # -- owners (watch of PoolUsers and UpstreamTokens) ---------------------------------------
    def put_owner(self, kind: str, name: str, uid: str) -> None:
        if self._owners[kind].get(name) != uid:
            self._owners[kind][name] = uid
            self._owners_changed(kind)

    def delete_owner(self, kind: str, name: str) -> None:
        if self._owners[kind].pop(name, None) is not None:
            self._owners_changed(kind)

    def replace_owners(self, kind: str, owners: Iterable[tuple[str, str]]) -> None:
        new = dict(owners)
        self.owners_synced.add(kind)
        if new != self._owners[kind]:
            self._owners[kind] = new
            self._owners_changed(kind)

    def _owners_changed(self, kind: str) -> None:
        if kind == KIND_USER:
            self._rebuild_hashes()
        else:
            before = self._upstreams
            self._rebuild_upstreams()
            self._notify(before)

    def _owned(self, kind: str, name: str, owner_uid: str) -> bool:
        return not self.verify_owners or (bool(owner_uid) and self._owners[kind].get(name) == owner_uid)

    def _rebuild_hashes(self) -> None:
        # Rebuilt rather than patched: two objects claiming one hash must not leave a stale entry.
        by_hash: dict[str, UserRoute] = {}
        shared: set[str] = set()
        for route, uid in self._users.values():
            if not self._owned(KIND_USER, route.user, uid):
                continue
            if route.token_sha256 in by_hash and by_hash[route.token_sha256].user != route.user:
                shared.add(route.token_sha256)
            by_hash[route.token_sha256] = route
        for digest in shared:
            log.warning("two users claim one personal token; refusing both (%s)", by_hash[digest].user)
            del by_hash[digest]
        self._by_hash = by_hash

    def _rebuild_upstreams(self) -> None:
        self._upstreams = {
            r.name: r
            for r, uid in self._upstreams_by_object.values()
            if self._owned(KIND_UPSTREAM, r.name, uid)
        }

    def _notify(self, before: dict[str, UpstreamRoute]) -> None:
        after = self._upstreams
        for name in before.keys() | after.keys():
            old, new = before.get(name), after.get(name)
            if old != new:
                for listener in self.upstream_listeners:
                    listener(name, old, new)
