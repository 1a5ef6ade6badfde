"""``/api/admin/tokens`` and ``/api/admin/allocations``: the pool's upstream accounts and who holds them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from . import account_sign_in, allocation_actions, queries, token_actions
from .api_models import AllocationCreate, BulkAssign, SignInFinish, TokenCreate
from .guards import BackendDep, CurrentCaller, Namespace
from .pool_stats import token_summary
from .present import allocation_json, days_json, page_json, token_json
from .tallies import utc_today
from .writes import row

tokens = APIRouter(prefix="/api/admin/tokens", tags=["admin: upstream tokens"])
allocations = APIRouter(prefix="/api/admin/allocations", tags=["admin: allocations"])
TOKENS, ALLOCATIONS = token_actions.TOKENS, allocation_actions.ALLOCATIONS
TokenState = Literal["", "Healthy", "CoolingDown", "Unhealthy", "Retired", "Suspended", "NotReady"]
PerPage = Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE, alias="perPage")]


@tokens.get("")
async def list_tokens(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    q: Annotated[str, Query(max_length=256)] = "",
    state: TokenState = "",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: PerPage = 50,
) -> dict[str, Any]:
    await b.access.check(authed.caller, ns, "list", TOKENS)
    found = queries.tokens(b.mirror.pool(ns), q, state, page, per_page)
    today = utc_today()
    return page_json(found, [token_json(t, today) for t in found.items])


@tokens.post("", status_code=201)
async def create_token(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: TokenCreate
) -> dict[str, Any]:
    """Stores the credential in a Secret (never shown again) and creates the UpstreamToken."""
    await token_actions.create_token(b, authed.caller, ns, body)
    return token_json(row(b, ns, TOKENS, body.name), utc_today())


@tokens.post("/oauth/start")
async def start_sign_in(b: BackendDep, authed: CurrentCaller, ns: Namespace) -> dict[str, Any]:
    """Starts adding an Augment account by signing in with it: open `url`, sign in, and send
    the JSON the page shows to `oauth/finish` with this `loginId`, from the same session (or
    the same bearer identity) within `expiresInSeconds`. Same rights as adding a token."""
    return await account_sign_in.start(b, authed, ns)


@tokens.post("/oauth/finish", status_code=201)
async def finish_sign_in(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: SignInFinish
) -> dict[str, Any]:
    """Checks the pasted answer against its sign-in (once), exchanges the code and creates the
    credential Secret and the UpstreamToken (endpoint = the tenant URL). 404 `SignInNotFound`,
    422 `SignInRefused` (state, expiry, tenant host, the code refused upstream), 502
    `TenantUnreachable`; the access token is never in an answer."""
    await account_sign_in.finish(b, authed, ns, body)
    return token_json(row(b, ns, TOKENS, body.name), utc_today())


@tokens.get("/{name}")
async def get_token(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    name: str,
    days: Annotated[int, Query(ge=1, le=31)] = 30,
) -> dict[str, Any]:
    await b.access.check(authed.caller, ns, "get", TOKENS, name)
    token = row(b, ns, TOKENS, name)
    today = utc_today()
    return {
        "token": token_json(token, today),
        "daily": days_json(token_summary(token, today, days)["days"]),
        "users": queries.users_holding(b.mirror.pool(ns), name),
    }


@tokens.post("/{name}/suspend")
async def suspend_token(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await token_actions.set_suspended(b, authed.caller, ns, name, True)
    return token_json(row(b, ns, TOKENS, name), utc_today())


@tokens.post("/{name}/resume")
async def resume_token(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await token_actions.set_suspended(b, authed.caller, ns, name, False)
    return token_json(row(b, ns, TOKENS, name), utc_today())


@tokens.post("/{name}/check", status_code=202)
async def check_token(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, str]:
    """Asks for a health check now (annotation tokenpool.io/check-now)."""
    await token_actions.check_now(b, authed.caller, ns, name)
    return {"status": "requested"}


@tokens.delete("/{name}", status_code=204)
async def delete_token(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> None:
    await token_actions.delete_token(b, authed.caller, ns, name)


@allocations.get("")
async def list_allocations(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    q: Annotated[str, Query(max_length=256)] = "",
    user: Annotated[str, Query(max_length=253)] = "",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: PerPage = 50,
) -> dict[str, Any]:
    await b.access.check(authed.caller, ns, "list", ALLOCATIONS)
    found = queries.allocations(b.mirror.pool(ns), q, user, page, per_page)
    return page_json(found, [allocation_json(a) for a in found.items])


@allocations.post("", status_code=201)
async def create_allocation(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: AllocationCreate
) -> dict[str, Any]:
    obj = await allocation_actions.create_allocation(b, authed.caller, ns, body)
    return allocation_json(row(b, ns, ALLOCATIONS, obj["metadata"]["name"]))


@allocations.post("/bulk", status_code=201)
async def bulk_assign(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: BulkAssign
) -> dict[str, Any]:
    """One allocation per listed user (by token names, or selector + count)."""
    return await allocation_actions.bulk_assign(b, authed.caller, ns, body)


@allocations.post("/{name}/suspend")
async def suspend_allocation(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str
) -> dict[str, Any]:
    await allocation_actions.set_suspended(b, authed.caller, ns, name, True)
    return allocation_json(row(b, ns, ALLOCATIONS, name))


@allocations.post("/{name}/resume")
async def resume_allocation(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> dict[str, Any]:
    await allocation_actions.set_suspended(b, authed.caller, ns, name, False)
    return allocation_json(row(b, ns, ALLOCATIONS, name))


@allocations.delete("/{name}", status_code=204)
async def delete_allocation(b: BackendDep, authed: CurrentCaller, ns: Namespace, name: str) -> None:
    await allocation_actions.delete_allocation(b, authed.caller, ns, name)
