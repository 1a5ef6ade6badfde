"""What this replica knows of every PoolUser's and UpstreamToken's status: an informer-style cache.

Fed by a watch of the two kinds (:mod:`.status_watch`) and by the answers to this replica's own
status writes, it replaces the list of every object that each flush used to make: limits read
the other replicas' counts from it, the flusher takes the base document and ``resourceVersion``
of a write from it, and the balancer adopts other replicas' health verdicts from it. An idle
replica therefore sends nothing beyond its watches, and a busy one writes only what changed
(docs/usage.md, "Write-back").

Per object it keeps the ``uid`` and ``resourceVersion`` (what a conditional write needs; the
uids also go to the route index, which serves a route only when its ownerReference carries its
resource's current uid: :attr:`StatusCache.owners`), the few figures the request path reads
(:class:`Figures`: today's and this minute's requests, the total, the last use), the health
document, and the whole ``status.usage`` compressed (about 0.6 KB for 31 days instead of ~40 KB
as parsed objects); the whole document is parsed only to write it or to show it to its user.

Ordering: the watch delivers events in order, but the answer to a write and the watch event of
the same or an older write race. Versions are compared as the integers the API server
guarantees since Kubernetes 1.35 (KEP-5504), so an older view never replaces a newer one.
While an object's write is in flight, events about it are held back and applied when the write
ends: a replica's own counts are then in exactly one place, the document or its unflushed delta.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from pydantic import ValidationError

from tokenpool.contract.compiled import KIND_UPSTREAM, KIND_USER
from tokenpool.contract.status_fields import Health, Usage, parse_rfc3339

from .counters import ObjectKey
from .store import Stored

log = logging.getLogger(__name__)

KINDS = (KIND_USER, KIND_UPSTREAM)
_DAYS_KEPT = 3  # newest daily entries in Figures: today, and a day either side for skewed clocks
_TOMBSTONES = 4096  # deleted objects remembered, so a late write answer does not resurrect one
_EMPTY = zlib.compress(b"{}")


def newer(a: str, b: str) -> bool:
    """Whether resourceVersion ``a`` is newer than ``b``: positive integers without leading zeros
    (compare length, then digits). A version that is not one is taken as newer (it arrived later)."""
    if a.isdigit() and b.isdigit():
        return (len(a), a) > (len(b), b)
    return a != b


@dataclass(frozen=True, slots=True)
class Figures:
    """The parts of ``status.usage`` the request path reads, without parsing anything."""

    total_requests: int = 0
    last_used: float | None = None  # wall clock (time.time())
    days: tuple[tuple[str, int], ...] = ()  # (date, requests) of the newest daily entries
    minute: tuple[str, int] | None = None  # the requestsPerMinute window: (start, requests)

    def requests_on(self, date: str) -> int:
        for day, requests in self.days:
            if day == date:
                return requests
        return 0

    def requests_in(self, minute: str) -> int:
        return self.minute[1] if self.minute is not None and self.minute[0] == minute else 0

    @classmethod
    def of(cls, usage: Usage) -> Figures:
        last = parse_rfc3339(usage.last_used_at).timestamp() if usage.last_used_at else None
        return cls(
            total_requests=usage.total.requests,
            last_used=last,
            days=tuple((d.date, d.requests) for d in usage.daily[-_DAYS_KEPT:]),
            minute=(usage.minute.start, usage.minute.requests) if usage.minute else None,
        )


@dataclass(slots=True)
class Entry:
    """One object as this replica last saw it."""

    uid: str
    resource_version: str
    figures: Figures
    health: Health | None  # UpstreamTokens only
    usage_z: bytes = field(repr=False)  # status.usage as compressed JSON

    def usage(self) -> Usage:
        return Usage.model_validate_json(zlib.decompress(self.usage_z))


def _entry(kind: str, stored: Stored) -> Entry:
    raw = stored.status.get("usage") or {}
    try:
        usage = Usage.model_validate(raw)
        usage_z = zlib.compress(orjson.dumps(raw), 1) if raw else _EMPTY
    except ValidationError:
        log.warning("ignoring unreadable status.usage of %s %s", kind, stored.name)
        usage, usage_z = Usage(), _EMPTY
    health = None
    if kind == KIND_UPSTREAM and stored.status.get("health"):
        try:
            health = Health.model_validate(stored.status["health"])
        except ValidationError:
            log.warning("ignoring unreadable status.health of UpstreamToken %s", stored.name)
    return Entry(stored.uid, stored.resource_version, Figures.of(usage), health, usage_z)


class Owners(Protocol):
    """Who learns which PoolUsers and UpstreamTokens exist, with their uids (the route index)."""

    def put_owner(self, kind: str, name: str, uid: str) -> None: ...

    def delete_owner(self, kind: str, name: str) -> None: ...

    def replace_owners(self, kind: str, owners: Iterable[tuple[str, str]]) -> None: ...


class StatusCache:
    def __init__(self, owners: Owners | None = None) -> None:
        self.owners = owners
        self._objects: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._gone: OrderedDict[ObjectKey, str] = OrderedDict()  # deleted: key -> its last version
        self._held: set[ObjectKey] = set()
        self._parked: dict[ObjectKey, Stored] = {}  # watch news held back during a write
        self.synced: set[str] = set()  # kinds listed at least once

    # -- reads -------------------------------------------------------------------------------
    def get(self, key: ObjectKey) -> Entry | None:
        return self._objects[key[0]].get(key[1])

    def figures(self, key: ObjectKey) -> Figures | None:
        entry = self._objects[key[0]].get(key[1])
        return entry.figures if entry is not None else None

    def usage(self, key: ObjectKey) -> Usage | None:
        entry = self._objects[key[0]].get(key[1])
        return entry.usage() if entry is not None else None

    def healths(self) -> dict[str, Health | None]:
        """``status.health`` of every UpstreamToken (None: never written, or cleared)."""
        return {name: e.health for name, e in self._objects[KIND_UPSTREAM].items()}

    # -- writes (the watch, and the answers to this replica's writes) --------------------------
    def put(self, kind: str, stored: Stored, own_write: bool = False) -> None:
        """An object as the API server showed it; ignored when an equal or newer view is known.
        Watch news about an object being written right now waits for the write to end."""
        key = (kind, stored.name)
        if key in self._held and not own_write:
            parked = self._parked.get(key)
            if parked is None or newer(stored.resource_version, parked.resource_version):
                self._parked[key] = stored
            return
        gone = self._gone.get(key)
        if gone is not None:
            if not newer(stored.resource_version, gone):
                return
            del self._gone[key]
        current = self._objects[kind].get(stored.name)
        if current is not None and not newer(stored.resource_version, current.resource_version):
            return
        self._objects[kind][stored.name] = entry = _entry(kind, stored)
        if self.owners is not None and (current is None or current.uid != entry.uid):
            self.owners.put_owner(kind, stored.name, entry.uid)

    def delete(self, kind: str, name: str, resource_version: str = "") -> None:
        if self._objects[kind].pop(name, None) is not None and self.owners is not None:
            self.owners.delete_owner(kind, name)
        if resource_version:
            key = (kind, name)
            self._gone[key] = resource_version
            self._gone.move_to_end(key)
            while len(self._gone) > _TOMBSTONES:
                self._gone.popitem(last=False)

    def retain(self, kind: str, names: set[str]) -> None:
        """A full list of ``kind`` ended with ``names`` in it (each one :meth:`put` already):
        whatever else the cache holds was deleted while nobody watched."""
        for name in [n for n in self._objects[kind] if n not in names]:
            del self._objects[kind][name]
        self.synced.add(kind)
        if self.owners is not None:
            self.owners.replace_owners(kind, ((n, e.uid) for n, e in self._objects[kind].items()))

    # -- the flusher's hold on the objects it writes -----------------------------------------
    def hold(self, keys: Iterable[ObjectKey]) -> None:
        self._held.update(keys)

    def parked(self, key: ObjectKey) -> Stored | None:
        """The newest watch news held back while ``key`` is written: after a 409 it is usually the
        very write that won the race, so the retry needs no read."""
        return self._parked.get(key)

    def release(self, key: ObjectKey) -> None:
        """The write of ``key`` ended (its answer, if any, is already in): apply what the watch
        said in the meantime, when newer."""
        self._held.discard(key)
        parked = self._parked.pop(key, None)
        if parked is not None:
            self.put(key[0], parked)
