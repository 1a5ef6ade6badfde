"""The in-memory route index: what the request path reads, never the API server.

Two maps, fed by the watch (kube_watch.py) or directly by tests:
``sha256(personal token) → UserRoute`` and ``upstream name → UpstreamRoute``. Each is keyed
internally by the Kubernetes object name too, so a DELETE event (which carries only the object)
removes exactly what that object had added, and a full relist can replace a whole kind at once:
that is how a lost watch resyncs without keeping objects deleted during the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tokenpool.contract.compiled import UpstreamRoute, UserRoute


class RouteIndex:
    def __init__(self) -> None:
        self._users: dict[str, UserRoute] = {}  # object name → route
        self._by_hash: dict[str, UserRoute] = {}
        self._upstreams_by_object: dict[str, UpstreamRoute] = {}
        self._upstreams: dict[str, UpstreamRoute] = {}
        self.users_synced = False
        self.upstreams_synced = False
        # Called as ``(name, old route, new route)`` whenever an upstream's compiled route changes
        # or disappears (new None), so health can forget verdicts a new credential invalidates
        # and drop what it keeps about tokens that are gone.
        self.upstream_listeners: list[Callable[[str, UpstreamRoute | None, UpstreamRoute | None], None]] = []

    @property
    def ready(self) -> bool:
        return self.users_synced and self.upstreams_synced

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
    def put_user(self, obj_name: str, route: UserRoute) -> None:
        self._users[obj_name] = route
        self._rebuild_hashes()

    def delete_user(self, obj_name: str) -> None:
        if self._users.pop(obj_name, None) is not None:
            self._rebuild_hashes()

    def replace_users(self, routes: Iterable[tuple[str, UserRoute]]) -> None:
        self._users = dict(routes)
        self._rebuild_hashes()
        self.users_synced = True

    def put_upstream(self, obj_name: str, route: UpstreamRoute) -> None:
        before = self._upstreams
        self._upstreams_by_object[obj_name] = route
        self._rebuild_upstreams()
        self._notify(before)

    def delete_upstream(self, obj_name: str) -> None:
        if obj_name in self._upstreams_by_object:
            before = self._upstreams
            del self._upstreams_by_object[obj_name]
            self._rebuild_upstreams()
            self._notify(before)

    def replace_upstreams(self, routes: Iterable[tuple[str, UpstreamRoute]]) -> None:
        before = self._upstreams
        self._upstreams_by_object = dict(routes)
        self._rebuild_upstreams()
        self.upstreams_synced = True
        self._notify(before)

    def _rebuild_hashes(self) -> None:
        # Rebuilt rather than patched: two objects claiming one hash must not leave a stale entry.
        self._by_hash = {r.token_sha256: r for r in self._users.values()}

    def _rebuild_upstreams(self) -> None:
        self._upstreams = {r.name: r for r in self._upstreams_by_object.values()}

    def _notify(self, before: dict[str, UpstreamRoute]) -> None:
        after = self._upstreams
        for name in before.keys() | after.keys():
            old, new = before.get(name), after.get(name)
            if old != new:
                for listener in self.upstream_listeners:
                    listener(name, old, new)
