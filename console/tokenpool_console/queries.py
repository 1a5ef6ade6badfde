"""Search, filter, sort and page the mirror's rows: server-side paging for pools of any size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .mirror import NamespacePool
from .projections import AllocationRow, TokenRow, UserRow

T = TypeVar("T")
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _paged(rows: list[T], page: int, per_page: int) -> Page[T]:
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    pages = max(1, -(-len(rows) // per_page))
    page = max(1, min(page, pages))
    start = (page - 1) * per_page
    return Page(rows[start : start + per_page], len(rows), page, per_page)


def _matching(rows: Iterable[T], q: str, search: Callable[[T], str]) -> list[T]:
    q = q.strip().lower()
    return [r for r in rows if q in search(r)] if q else list(rows)


USER_SORTS: dict[str, tuple[Callable[[UserRow], Any], bool]] = {
    "name": (lambda u: u.name, False),
    "created": (lambda u: u.meta.created, True),
    "requests": (lambda u: u.usage.total.requests, True),
    "lastUsed": (lambda u: u.usage.last_used_at, True),
}
USER_STATES = ("active", "suspended", "pending")


def users(
    pool: NamespacePool,
    q: str = "",
    role: str = "",
    state: str = "",
    sort: str = "name",
    page: int = 1,
    per_page: int = 50,
) -> Page[UserRow]:
    rows = _matching(pool.users.values(), q, lambda u: u.search)
    if role:
        rows = [u for u in rows if u.role == role]
    if state:
        rows = [u for u in rows if u.state == state]
    key, reverse = USER_SORTS.get(sort, USER_SORTS["name"])
    rows.sort(key=lambda u: u.name)
    if sort != "name":
        rows.sort(key=key, reverse=reverse)  # stable: ties stay in name order
    return _paged(rows, page, per_page)


# TokenRow.state values, for filters and the health counts (Retired: the account is spent or ended).
TOKEN_STATES = ("Healthy", "CoolingDown", "Unhealthy", "Retired", "Suspended", "NotReady")


def tokens(
    pool: NamespacePool, q: str = "", state: str = "", page: int = 1, per_page: int = 50
) -> Page[TokenRow]:
    rows = _matching(pool.tokens.values(), q, lambda t: t.search)
    if state:
        rows = [t for t in rows if t.state == state]
    rows.sort(key=lambda t: t.name)
    return _paged(rows, page, per_page)


def allocations(
    pool: NamespacePool, q: str = "", user: str = "", page: int = 1, per_page: int = 50
) -> Page[AllocationRow]:
    rows = _matching(pool.allocations.values(), q, lambda a: a.search)
    if user:
        rows = [a for a in rows if a.user == user]
    rows.sort(key=lambda a: (a.user, a.priority, a.name))
    return _paged(rows, page, per_page)


def allocations_of(pool: NamespacePool, user: str) -> list[AllocationRow]:
    return sorted(
        (a for a in pool.allocations.values() if a.user == user), key=lambda a: (a.priority, a.name)
    )


def users_holding(pool: NamespacePool, token: str) -> list[str]:
    return sorted({a.user for a in pool.allocations.values() if token in a.granted})
