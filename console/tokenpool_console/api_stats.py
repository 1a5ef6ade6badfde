"""``/api/admin/stats``, CSV exports and invitation codes: all figures from the daily usage the
proxy writes into status (docs/console.md, "Statistics")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from . import csv_export, joining
from .api_models import InvitationCreate
from .guards import BackendDep, CurrentCaller, Namespace
from .present import stats_json
from .tallies import utc_today

router = APIRouter(prefix="/api/admin", tags=["admin: statistics"])
Days = Annotated[int, Query(ge=1, le=31, description="Days of history (at most 31: what status keeps)")]


async def _may_read_pool(b: Any, caller: Any, ns: str) -> None:
    await b.access.check(caller, ns, "list", "poolusers")
    await b.access.check(caller, ns, "list", "upstreamtokens")


@router.get("/stats")
async def stats(b: BackendDep, authed: CurrentCaller, ns: Namespace, days: Days = 30) -> dict[str, Any]:
    """Requests, successes, errors and tokens per day; success rate; top users and tokens; quota
    use; token health counts."""
    await _may_read_pool(b, authed.caller, ns)
    return stats_json(b.stats.get(b.mirror.pool(ns), utc_today(), days))


@router.get("/export/{what}.csv", response_class=StreamingResponse)
async def export(
    b: BackendDep,
    authed: CurrentCaller,
    ns: Namespace,
    what: Literal["users", "tokens", "daily"],
    days: Days = 30,
) -> StreamingResponse:
    await _may_read_pool(b, authed.caller, ns)
    maker = {"users": csv_export.users, "tokens": csv_export.tokens, "daily": csv_export.daily}[what]
    headers = {"Content-Disposition": f'attachment; filename="tokenpool-{ns}-{what}-{utc_today()}.csv"'}
    return StreamingResponse(
        maker(b.mirror.pool(ns), utc_today(), days), media_type="text/csv; charset=utf-8", headers=headers
    )


@router.get("/invitations", tags=["admin: joining"])
async def list_invitations(b: BackendDep, authed: CurrentCaller, ns: Namespace) -> list[dict[str, Any]]:
    return await joining.list_invitations(b, authed.caller, ns)


@router.post("/invitations", status_code=201, tags=["admin: joining"])
async def create_invitation(
    b: BackendDep, authed: CurrentCaller, ns: Namespace, body: InvitationCreate
) -> dict[str, str]:
    """A new invitation code, shown this once."""
    return {"invitation": await joining.create_invitation(b, authed.caller, ns, body)}


@router.delete("/invitations/{invitation_id}", status_code=204, tags=["admin: joining"])
async def revoke_invitation(b: BackendDep, authed: CurrentCaller, ns: Namespace, invitation_id: str) -> None:
    await joining.revoke_invitation(b, authed.caller, ns, invitation_id)
