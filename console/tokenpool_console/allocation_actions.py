"""Writes on TokenAllocations: grant by name or by selector + count, to one user or many at once
(bulk assign), suspend/resume, delete. The operator decides what is granted (quota, picks)."""

from __future__ import annotations

import secrets
from typing import Any

from tokenpool.contract import compiled as contract

from . import problems, writes
from .api_models import AllocationCreate, BulkAssign
from .backend import Backend
from .callers import Caller

ALLOCATIONS = contract.PLURAL_ALLOCATION


def grant_spec(
    user: str, tokens: list[str] | None, selector: dict[str, str] | None, count: int | None, priority: int
) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user, "priority": priority}
    if tokens:
        spec["tokens"] = sorted(set(tokens))
    else:
        spec["selector"] = {"matchLabels": selector}
        spec["count"] = count
    return spec


def _name_for(user: str) -> str:
    return f"{user[:52]}-{secrets.token_hex(3)}"


async def create_allocation(b: Backend, caller: Caller, ns: str, body: AllocationCreate) -> dict[str, Any]:
    if body.user not in b.mirror.pool(ns).users:
        raise problems.invalid(f"there is no PoolUser {body.user!r} in namespace {ns!r}")
    spec = grant_spec(body.user, body.tokens, body.selector, body.count, body.priority)
    return await writes.create(
        b, caller, ns, ALLOCATIONS, body.name or _name_for(body.user), {}, spec, "AllocationCreated"
    )


async def bulk_assign(b: Backend, caller: Caller, ns: str, body: BulkAssign) -> dict[str, Any]:
    """One allocation per user; users that do not exist are reported, not created."""
    await b.access.check(caller, ns, "create", ALLOCATIONS)
    users = b.mirror.pool(ns).users
    created, failed = [], []
    for user in dict.fromkeys(body.users):
        if user not in users:
            failed.append({"user": user, "message": "no such PoolUser"})
            continue
        spec = grant_spec(user, body.tokens, body.selector, body.count, body.priority)
        try:
            obj = await writes.create(
                b, caller, ns, ALLOCATIONS, _name_for(user), {}, spec, "AllocationCreated"
            )
        except problems.Problem as exc:
            failed.append({"user": user, "message": exc.message})
            continue
        created.append(obj["metadata"]["name"])
    return {"created": created, "failed": failed}


async def set_suspended(b: Backend, caller: Caller, ns: str, name: str, suspended: bool) -> dict[str, Any]:
    reason = "AllocationSuspended" if suspended else "AllocationResumed"
    body = {"spec": {"suspended": suspended}}
    return await writes.patch(
        b, caller, ns, ALLOCATIONS, name, body, reason, "suspended" if suspended else "resumed"
    )


async def delete_allocation(b: Backend, caller: Caller, ns: str, name: str) -> None:
    await writes.delete(b, caller, ns, ALLOCATIONS, name, "AllocationDeleted")
