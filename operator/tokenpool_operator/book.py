"""The grant book: which allocation holds which upstream tokens, known to this operator process.

Selector allocations of different users compete for the same tokens (``maxAllocations``,
least-allocated first), so every decision needs the current holder counts of every token. The
book is that authority: it is seeded from ``status.tokens`` of every allocation by the startup
listing (before any event is handled), and afterwards updated synchronously when a decision is
made, before the status patch is awaited. Two decisions therefore never see stale counts, even
while the watch stream still lags behind the operator's own patches (the operator runs as one
replica).
"""

from __future__ import annotations

from collections.abc import Iterable

Key = tuple[str, str]  # (namespace, name)


class GrantBook:
    def __init__(self) -> None:
        self._grants: dict[Key, tuple[str, ...]] = {}
        self._holders: dict[Key, set[Key]] = {}  # token key → allocation keys holding it
        self._short: set[Key] = set()  # allocations granted fewer tokens than they asked for

    def seed(self, alloc: Key, tokens: Iterable[str]) -> None:
        """Record what the API says an allocation holds, unless this process decided already."""
        if alloc not in self._grants:
            self.assign(alloc, tokens)

    def assign(self, alloc: Key, tokens: Iterable[str]) -> None:
        ns = alloc[0]
        for name in self._grants.get(alloc, ()):
            holders = self._holders.get((ns, name))
            if holders is not None:
                holders.discard(alloc)
                if not holders:
                    del self._holders[(ns, name)]
        new = tuple(tokens)
        self._grants[alloc] = new
        for name in new:
            self._holders.setdefault((ns, name), set()).add(alloc)

    def release(self, alloc: Key) -> tuple[str, ...]:
        """Forget a deleted allocation; returns the tokens it held."""
        old = self._grants.get(alloc, ())
        self.assign(alloc, ())
        del self._grants[alloc]
        self._short.discard(alloc)
        return old

    def __contains__(self, alloc: object) -> bool:
        return alloc in self._grants

    def held(self, alloc: Key) -> tuple[str, ...]:
        return self._grants.get(alloc, ())

    def count(self, token: Key, excluding: Iterable[Key] = ()) -> int:
        holders = self._holders.get(token, set())
        return len(holders) - sum(1 for k in set(excluding) if k in holders)

    def holders(self, token: Key) -> set[Key]:
        return set(self._holders.get(token, ()))

    def mark_short(self, alloc: Key, short: bool) -> None:
        if short:
            self._short.add(alloc)
        else:
            self._short.discard(alloc)

    def short(self, namespace: str) -> list[Key]:
        """Allocations still waiting for tokens: candidates when a token frees up or appears."""
        return [k for k in self._short if k[0] == namespace]
