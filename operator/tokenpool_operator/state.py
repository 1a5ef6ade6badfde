"""In-memory state shared by the Kopf callbacks and the reconcilers of one operator process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenpool_operator.allocations import TokenView
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

    def put_token(self, ns: str, view: TokenView) -> None:
        self.tokens.setdefault(ns, {})[view.name] = view

    def drop_token(self, ns: str, name: str) -> None:
        self.tokens.get(ns, {}).pop(name, None)
        self.eligible.pop((ns, name), None)
        self.announced.pop((ns, name), None)

    def changed(self, kind: str, ns: str, name: str, fingerprint: Any) -> bool:
        key = (kind, ns, name)
        if self.seen.get(key) == fingerprint:
            return False
        self.seen[key] = fingerprint
        return True

    def forget(self, kind: str, ns: str, name: str) -> None:
        self.seen.pop((kind, ns, name), None)
