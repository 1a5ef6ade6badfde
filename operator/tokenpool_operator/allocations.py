"""Pure resolution of one user's TokenAllocations into granted upstream tokens.

A user's allocations are resolved together because the quota is per user: they are visited
oldest first (creation time, then name), so older allocations win and a newer one that does not
fit reports ``QuotaExceeded``. The quota counts distinct tokens. Selector allocations keep their
current picks while those stay eligible (no reshuffling when counts change elsewhere) and fill
up with the least-allocated eligible matching tokens; an unhealthy pick is dropped and replaced.
``maxAllocations`` is respected for both explicit names and selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tokenpool.contract import compiled as c
from tokenpool_operator.conditions import Cond


@dataclass(frozen=True)
class TokenView:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    max_allocations: int = 0
    eligible: bool = True  # credential resolved, healthy, not suspended


@dataclass(frozen=True)
class AllocationView:
    name: str
    user: str
    created: str = ""
    tokens: tuple[str, ...] | None = None
    selector: Mapping[str, Any] | None = None
    count: int = 0
    priority: int = 1
    suspended: bool = False

    @property
    def order(self) -> tuple[str, str]:
        return (self.created, self.name)


@dataclass(frozen=True)
class Grant:
    tokens: tuple[str, ...]
    conditions: tuple[Cond, ...]


def matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels AND matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or ()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _conds(granted: Sequence[str], wanted: int, problem: Cond | None, quota_hit: bool) -> tuple[Cond, ...]:
    quota = (
        Cond("WithinQuota", False, "QuotaExceeded", "granting more would exceed the user's tokenQuota")
        if quota_hit
        else Cond("WithinQuota", True, "WithinQuota", "within the user's tokenQuota")
    )
    if problem is None:
        problem = quota if quota_hit else None
    if problem is not None:
        msg = f"{len(granted)} of {wanted} token(s) granted: {problem.message}"
        return (Cond("Ready", False, problem.reason, msg), quota)
    return (Cond("Ready", True, "Granted", f"{len(granted)} token(s) granted"), quota)


class _Quota:
    """The distinct tokens granted to one user so far, against its quota."""

    def __init__(self, quota: int, held_by_others: Callable[[str], int]) -> None:
        self.quota = quota
        self.granted: set[str] = set()
        self.used: dict[str, int] = {}
        self._others = held_by_others

    def load(self, name: str) -> int:
        return self._others(name) + self.used.get(name, 0)

    def has_room(self, tok: TokenView, holding: bool) -> bool:
        return holding or tok.max_allocations == 0 or self.load(tok.name) < tok.max_allocations

    def take(self, name: str, picks: list[str]) -> bool:
        """Grant ``name`` into ``picks`` if the quota allows; False when the quota is exhausted."""
        if name not in self.granted and len(self.granted) >= self.quota:
            return False
        self.granted.add(name)
        self.used[name] = self.used.get(name, 0) + 1
        picks.append(name)
        return True


def _explicit(alloc: AllocationView, tokens: Mapping[str, TokenView], q: _Quota, holding: set[str]) -> Grant:
    picks: list[str] = []
    problem: Cond | None = None
    quota_hit = False
    for name in alloc.tokens or ():
        tok = tokens.get(name)
        if tok is None:
            problem = problem or Cond("", False, "TokenNotFound", f"UpstreamToken {name!r} does not exist")
        elif not q.has_room(tok, name in holding):
            problem = problem or Cond(
                "", False, "TokenUnavailable", f"UpstreamToken {name!r} reached maxAllocations"
            )
        elif not q.take(name, picks):
            quota_hit = True
    return Grant(tuple(picks), _conds(picks, len(alloc.tokens or ()), problem, quota_hit))


Candidates = Callable[[Mapping[str, Any]], Sequence[TokenView]]


def scan(tokens: Mapping[str, TokenView]) -> Candidates:
    """Eligible tokens matching a selector, by scanning all tokens (callers may memoize)."""
    return lambda selector: [t for t in tokens.values() if t.eligible and matches(selector, t.labels)]


def _selected(alloc: AllocationView, candidates: Candidates, q: _Quota, current: Sequence[str]) -> Grant:
    fits = candidates(alloc.selector or {})
    kept = sorted((t for t in fits if t.name in current), key=lambda t: list(current).index(t.name))
    fresh = sorted(
        (t for t in fits if t.name not in current and q.has_room(t, False)),
        key=lambda t: (t.name in q.granted, q.load(t.name), t.name),
    )
    picks: list[str] = []
    quota_hit = False
    for tok in [*kept, *fresh]:
        if len(picks) >= alloc.count:
            break
        if not q.take(tok.name, picks):
            quota_hit = True
            break
    problem = None
    if len(picks) < alloc.count and not quota_hit:
        problem = Cond(
            "",
            False,
            "InsufficientTokens",
            "not enough healthy matching UpstreamTokens with free allocations",
        )
    return Grant(tuple(picks), _conds(picks, alloc.count, problem, quota_hit))


def resolve_user(
    allocations: Sequence[AllocationView],
    quota: int | None,
    tokens: Mapping[str, TokenView],
    held_by_others: Callable[[str], int],
    current: Mapping[str, Sequence[str]],
    candidates: Candidates | None = None,
) -> dict[str, Grant]:
    """Grants for every allocation of one user. ``quota`` None means the PoolUser does not exist;
    ``held_by_others(token)`` counts allocations of other users holding it; ``current`` maps an
    allocation name to what it holds now (to keep selector picks stable); ``candidates`` gives
    the eligible tokens matching a selector (default: scan ``tokens``)."""
    grants: dict[str, Grant] = {}
    q = _Quota(quota or 0, held_by_others)
    for alloc in sorted(allocations, key=lambda a: a.order):
        wanted = len(alloc.tokens) if alloc.tokens is not None else alloc.count
        if alloc.suspended:
            grants[alloc.name] = Grant(
                (), _conds((), wanted, Cond("", False, "Suspended", "suspended"), False)
            )
        elif quota is None:
            missing = Cond("", False, "UserNotFound", f"PoolUser {alloc.user!r} does not exist")
            grants[alloc.name] = Grant((), _conds((), wanted, missing, False))
        elif alloc.tokens is not None:
            grants[alloc.name] = _explicit(alloc, tokens, q, set(current.get(alloc.name, ())))
        else:
            picker = candidates or scan(tokens)
            grants[alloc.name] = _selected(alloc, picker, q, tuple(current.get(alloc.name, ())))
    return grants


def route_upstreams(
    allocations: Sequence[AllocationView], grants: Mapping[str, Grant]
) -> tuple[c.AllocatedUpstream, ...]:
    """The user's upstream names for the compiled route: by allocation priority (lower first),
    then allocation age, then the order within the allocation; each token once, at its best."""
    seen: set[str] = set()
    result = []
    for alloc in sorted(allocations, key=lambda a: (a.priority, a.order)):
        for name in grants.get(alloc.name, Grant((), ())).tokens:
            if name not in seen:
                seen.add(name)
                result.append(c.AllocatedUpstream(name=name, priority=alloc.priority))
    return tuple(result)
