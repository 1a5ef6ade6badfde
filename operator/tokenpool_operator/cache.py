"""The operator's in-memory view of the custom resources, with the reverse lookups it needs.

Why not ``@kopf.index``: Kopf makes every object's first event wait until every object of
every indexed kind has been indexed, with one toggle per object and a wake-up of all waiting
workers per toggle, which is quadratic in the number of objects (minutes at a few thousand).
Instead, the startup handler lists the three kinds once (paginated) before Kopf starts watching,
and the event handlers keep this cache current. The resync re-lists, which also drops anything
deleted in the short gap between that listing and Kopf's own.
"""

from __future__ import annotations

import time
from typing import Any

from tokenpool_operator.views import slim

Body = dict[str, Any]
Key = tuple[str, str]


def _link(index: dict[Key, set[str]], key: Key, value: str) -> None:
    index.setdefault(key, set()).add(value)


def _unlink(index: dict[Key, set[str]], key: Key, value: str) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]


class Cache:
    def __init__(self) -> None:
        self.users: dict[Key, Body] = {}
        self.tokens: dict[Key, Body] = {}
        self.allocations: dict[Key, Body] = {}
        self.by_user: dict[Key, dict[str, Body]] = {}  # (ns, user) → allocation name → body
        self.namers: dict[Key, set[str]] = {}  # (ns, token) → users naming it explicitly
        self.token_secrets: dict[Key, set[str]] = {}  # (ns, secret) → tokens using it
        self.user_secrets: dict[Key, set[str]] = {}  # (ns, secret) → users bringing their token
        self.stamps: dict[tuple[str, Key], float] = {}  # (kind, key) → monotonic time of last put

    # --- PoolUser -------------------------------------------------------------------------
    def put_user(self, body: Body) -> None:
        key = _key(body)
        self.drop_user(*key)
        self.users[key] = slim(body)
        ref = (body.get("spec") or {}).get("personalTokenSecretRef")
        if ref:
            _link(self.user_secrets, (key[0], ref["name"]), key[1])

    def drop_user(self, ns: str, name: str) -> None:
        old = self.users.pop((ns, name), None)
        ref = ((old or {}).get("spec") or {}).get("personalTokenSecretRef")
        if ref:
            _unlink(self.user_secrets, (ns, ref["name"]), name)

    # --- UpstreamToken --------------------------------------------------------------------
    def put_token(self, body: Body) -> None:
        key = _key(body)
        self.drop_token(*key)
        self.tokens[key] = slim(body)
        ref = (body.get("spec") or {}).get("credentialSecretRef") or {}
        _link(self.token_secrets, (key[0], ref.get("name", "")), key[1])

    def drop_token(self, ns: str, name: str) -> None:
        old = self.tokens.pop((ns, name), None)
        if old is not None:
            ref = (old.get("spec") or {}).get("credentialSecretRef") or {}
            _unlink(self.token_secrets, (ns, ref.get("name", "")), name)

    # --- TokenAllocation ------------------------------------------------------------------
    def put_allocation(self, body: Body) -> None:
        key = _key(body)
        self.drop_allocation(*key)
        body = slim(body)
        self.allocations[key] = body
        spec = body["spec"]
        self.by_user.setdefault((key[0], spec.get("user", "")), {})[key[1]] = body
        for token in spec.get("tokens") or ():
            _link(self.namers, (key[0], token), spec.get("user", ""))

    def drop_allocation(self, ns: str, name: str) -> Body | None:
        old = self.allocations.pop((ns, name), None)
        if old is not None:
            user = old["spec"].get("user", "")
            mine = self.by_user.get((ns, user), {})
            mine.pop(name, None)
            if not mine:
                self.by_user.pop((ns, user), None)
            for token in old["spec"].get("tokens") or ():
                still = any(token in (a["spec"].get("tokens") or ()) for a in mine.values())
                if not still:
                    _unlink(self.namers, (ns, token), user)
        return old

    def user_allocations(self, ns: str, user: str) -> list[Body]:
        return list(self.by_user.get((ns, user), {}).values())

    def allocation_user(self, ns: str, name: str) -> str | None:
        body = self.allocations.get((ns, name))
        return body["spec"].get("user") if body is not None else None

    def keys(self, kind: str) -> list[Key]:
        return list(self.table(kind))

    def put(self, kind: str, body: Body) -> None:
        {"user": self.put_user, "token": self.put_token, "allocation": self.put_allocation}[kind](body)
        self.stamps[(kind, _key(body))] = time.monotonic()

    def drop(self, kind: str, ns: str, name: str) -> None:
        {"user": self.drop_user, "token": self.drop_token, "allocation": self.drop_allocation}[kind](ns, name)
        self.stamps.pop((kind, (ns, name)), None)

    def ghosts(self, kind: str, listed: set[Key], since: float) -> list[Key]:
        """Cached objects a listing started at ``since`` no longer has, not updated meanwhile."""
        return [k for k in self.table(kind) if k not in listed and self.stamps.get((kind, k), 0) < since]

    def table(self, kind: str) -> dict[Key, Body]:
        return {"user": self.users, "token": self.tokens, "allocation": self.allocations}[kind]


def _key(body: Body) -> Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])
