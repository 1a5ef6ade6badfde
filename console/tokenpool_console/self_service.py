"""What any PoolUser may see and do about themselves: their usage, the upstream tokens they hold
with their health and rest times, and a new personal token (shown once). Writes are the
console's, on the caller's own PoolUser only, recorded in an Event naming them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from tokenpool.cli.operations import AdminError, Target, personal_token, wait_personal_token
from tokenpool.contract import compiled as contract
from tokenpool.contract.compiled import hash_personal_token
from tokenpool.kube.client import KubeError, cr_path

from . import pool_stats, problems, queries
from .backend import Backend
from .callers import Caller
from .projections import TokenRow, UserRow
from .tallies import ZERO, Tally
from .user_actions import check_rotatable, rotation_patch


@dataclass(frozen=True)
class HeldToken:
    name: str
    priority: int
    state: str  # TokenRow.state, or "Missing"
    reason: str
    rests_until: str  # RFC 3339, "" when not resting
    mine_today: Tally


@dataclass(frozen=True)
class MyAccount:
    user: UserRow
    tokens: list[HeldToken]
    summary: dict[str, Any]


def _held(token: TokenRow | None, name: str, priority: int, mine: Tally) -> HeldToken:
    if token is None:
        return HeldToken(name, priority, "Missing", "", "", mine)
    return HeldToken(name, priority, token.state, token.state_reason, token.health.cooldown_until or "", mine)


def account(b: Backend, caller: Caller, today: str, days: int = 30) -> MyAccount:
    if not caller.is_pool_user:
        raise problems.not_found(
            "a PoolUser for this login (Kubernetes identities have no self-service page)"
        )
    pool = b.mirror.pool(caller.namespace)
    user = pool.users.get(caller.name)
    if user is None:
        raise problems.not_found(f"PoolUser {caller.name!r}")
    mine = dict(user.usage.upstream_today(today))
    seen: dict[str, HeldToken] = {}
    for alloc in queries.allocations_of(pool, caller.name):
        if alloc.suspended:
            continue
        for name in alloc.granted:
            if name not in seen:
                seen[name] = _held(pool.tokens.get(name), name, alloc.priority, mine.get(name, ZERO))
    return MyAccount(user, list(seen.values()), pool_stats.user_summary(user, today, days))


async def rotate_own(b: Backend, caller: Caller) -> tuple[str, Caller]:
    """A new personal token for the caller; returns it and the caller as the new token opens it."""
    if not caller.is_pool_user:
        raise problems.not_found("a PoolUser for this login")
    ns, name = caller.namespace, caller.name
    check_rotatable(b, ns, name)
    target = Target(b.kube, ns)
    try:
        old = await personal_token(target, name)
        obj = await b.kube.merge_patch(cr_path(ns, contract.PLURAL_USER, name), rotation_patch())
    except (AdminError, KubeError) as exc:
        raise problems.Problem(502, "KubernetesError", f"could not ask for a new token: {exc}") from exc
    if obj is None:
        raise problems.not_found(f"PoolUser {name!r}")
    b.mirror.observe("users", obj)
    await b.access.record(
        caller, obj, "TokenRotationRequested", "personal token rotation asked (self-service)"
    )
    try:
        token = await wait_personal_token(target, name, b.settings.token_wait_seconds, old)
    except AdminError as exc:
        raise problems.Problem(504, "OperatorTimeout", str(exc)) from exc
    digest = hash_personal_token(token)
    # The session moves to the new token once the console sees the operator's new route.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(b.settings.token_wait_seconds):
            while b.mirror.route(digest) is None:  # noqa: ASYNC110 - the route watch fills it
                await asyncio.sleep(0.05)
    return token, Caller("pooluser", name, ns, caller.role, token_sha256=digest)
