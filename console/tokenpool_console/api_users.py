"""``/api/admin/users``: list, search and page PoolUsers; create (token shown once), edit,
suspend/resume, rotate (token shown once), approve/reject join requests, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from . import joining, queries, user_actions
from .api_models import UserCreate, UserEdit
from .guards import BackendDep, CurrentCaller, Namespace
from .pool_stats import user_summary
from .present import allocation_json, days_json, page_json, user_json
from .tallies import utc_today
from .writes import row

router = APIRouter(prefix="/api/admin/users", tags=["admin: users"])
USERS = user_actions.USERS


@router.get("")
async def list_users(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    q: Annotated[str, Query(max_length=256, description="Substring of name, display name or e-mail")] = "",
    role: Literal["", "User", "Admin"] = "",
    state: Literal["", "active", "suspended", "pending"] = "",
    sort: Literal["name", "created", "requests", "lastUsed"] = "name",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE, alias="perPage")] = 50,
) -> dict[str, Any]:
    await b.access.check(authed.caller, ns, "list", USERS)
    found = queries.users(b.mirror.pool(ns), q, role, state, sort, page, per_page)
    today = utc_today()
    return page_json(found, [user_json(u, today) for u in found.items])


@router.post("", status_code=201)
async def create_user(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: UserCreate
) -> dict[str, Any]:
    """Creates the PoolUser and returns its personal token: the only time the console shows it."""
    _, token = await user_actions.create_user(b, authed.caller, ns, body)
    return {"user": user_json(row(b, ns, USERS, body.name), utc_today()), "personalToken": token}


@router.get("/{name}")
async def get_user(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    name: str,
    days: Annotated[int, Query(ge=1, le=31)] = 30,
) -> dict[str, Any]:
    await b.access.check(authed.caller, ns, "get", USERS, name)
    user = row(b, ns, USERS, name)
    today = utc_today()
    summary = user_summary(user, today, days)
    allocations = queries.allocations_of(b.mirror.pool(ns), name)
    return {
        "user": user_json(user, today),
        "daily": days_json(summary["days"]),
        "byUpstreamToday": [{"name": n, **t.as_dict()} for n, t in user.usage.upstream_today(today)],
        "allocations": [allocation_json(a) for a in allocations],
    }


@router.patch("/{name}")
async def edit_user(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str, body: UserEdit
) -> dict[str, Any]:
    await user_actions.edit_user(b, authed.caller, ns, name, body)
    return user_json(row(b, ns, USERS, name), utc_today())


@router.post("/{name}/suspend")
async def suspend_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await user_actions.set_suspended(b, authed.caller, ns, name, True)
    return user_json(row(b, ns, USERS, name), utc_today())


@router.post("/{name}/resume")
async def resume_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await user_actions.set_suspended(b, authed.caller, ns, name, False)
    return user_json(row(b, ns, USERS, name), utc_today())


@router.post("/{name}/rotate")
async def rotate_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, str]:
    """A new personal token for the user (the old one stops working); shown this once."""
    return {"personalToken": await user_actions.rotate(b, authed.caller, ns, name)}


@router.post("/{name}/approve")
async def approve_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await joining.approve(b, authed.caller, ns, name)
    return user_json(row(b, ns, USERS, name), utc_today())


@router.post("/{name}/reject", status_code=204)
async def reject_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> None:
    await joining.reject(b, authed.caller, ns, name)


@router.delete("/{name}", status_code=204)
async def delete_user(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> None:
    await user_actions.delete_user(b, authed.caller, ns, name)
