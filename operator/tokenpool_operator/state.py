"""In-memory state shared by the Kopf callbacks and the reconcilers of one operator process."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenpool_operator.allocations import TokenView, scan
from tokenpool_operator.book import GrantBook

Key = tuple[str, str]


@dataclass
class State:
    book: GrantBook = field(default_factory=GrantBook)
    # namespace → token name → view (labels, maxAllocations, eligibility) for allocation decisions.
    tokens: dict[str, dict[str, TokenView]] = field(default_factory=dict)
    # Eligibility as computed by this process (credential + health + suspended).
    eligible: dict[Key, bool] = field(default_factory=dict)
    # The view each token had when its users were last told; a change fans out to them.
    announced: dict[Key, TokenView] = field(default_factory=dict)
    # Last fingerprint seen per object, so own status patches do not enqueue work.
    seen: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    # (namespace, selector as canonical JSON) → eligible matching tokens; cleared per namespace
    # whenever a token view changes. Without it every user's reconcile scans every token.
    matching: dict[tuple[str, str], list[TokenView]] = field(default_factory=dict)

    def put_token(self, ns: str, view: TokenView) -> None:
        views = self.tokens.setdefault(ns, {})
        if views.get(view.name) != view:
            views[view.name] = view
            self._invalidate(ns)

    def drop_token(self, ns: str, name: str) -> None:
        if self.tokens.get(ns, {}).pop(name, None) is not None:
            self._invalidate(ns)
        self.eligible.pop((ns, name), None)
        self.announced.pop((ns, name), None)

    def _invalidate(self, ns: str) -> None:
        for key in [k for k in self.matching if k[0] == ns]:
            del self.matching[key]

    def candidates(self, ns: str) -> Callable[[Mapping[str, Any]], list[TokenView]]:
        """Memoized :func:`allocations.scan` over the namespace's tokens."""

        def pick(selector: Mapping[str, Any]) -> list[TokenView]:
            key = (ns, json.dumps(selector, sort_keys=True))
            found = self.matching.get(key)
            if found is None:
                found = self.matching[key] = list(scan(self.tokens.get(ns, {}))(selector))
            return found

        return pick

    # Personal tokens by sha256: two users with one token are both refused.
    token_of: dict[Key, str] = field(default_factory=dict)  # (ns, user) → digest
    users_of: dict[Key, set[str]] = field(default_factory=dict)  # (ns, digest) → users

    def claim_token(self, ns: str, user: str, digest: str | None) -> set[str]:
        """Record ``user``'s token digest (None: none / deleted); returns the other users whose
        standing may change with it (those sharing the old or the new digest)."""
        old = self.token_of.get((ns, user))
        if old == digest:
            return set()
        affected: set[str] = set()
        if old is not None:
            holders = self.users_of.get((ns, old), set())
            holders.discard(user)
            affected |= holders
            if not holders:
                self.users_of.pop((ns, old), None)
            del self.token_of[(ns, user)]
        if digest is not None:
            self.token_of[(ns, user)] = digest
            holders = self.users_of.setdefault((ns, digest), set())
            affected |= holders
            holders.add(user)
        return affected

    def token_users(self, ns: str, digest: str) -> set[str]:
        return set(self.users_of.get((ns, digest), ()))

    def changed(self, kind: str, ns: str, name: str, fingerprint: Any) -> bool:
        key = (kind, ns, name)
        if self.seen.get(key) == fingerprint:
            return False
        self.seen[key] = fingerprint
        return True

    def forget(self, kind: str, ns: str, name: str) -> None:
        self.seen.pop((kind, ns, name), None)
