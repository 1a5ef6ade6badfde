"""``GET /api/user/usage``: the caller's own usage, by day (plugin dialect: Bearer personal token).

Served from memory: the usage as of this replica's last read or write of the PoolUser status plus
what it counted since, so a user sees their latest request at once on the replica that served it
and within one flush interval everywhere.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from tokenpool.contract.compiled import UserRoute
from tokenpool.contract.status_fields import HISTORY_DAYS, to_wire

from ..auth import plugin_user
from ..errors import PluginError
from ..responses import JSON
from .service import UsageService

router = APIRouter()


@router.get("/api/user/usage")
async def user_usage(request: Request, user: Annotated[UserRoute, Depends(plugin_user)]) -> JSON:
    raw = request.query_params.get("days", str(HISTORY_DAYS))
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= HISTORY_DAYS:
        raise PluginError(400, f"days must be an integer from 1 to {HISTORY_DAYS}")
    usage = request.app.state.svc.usage
    if not isinstance(usage, UsageService):
        raise PluginError(503, "usage accounting is not enabled on this proxy")
    doc = usage.user_usage(user.user)
    doc.daily = doc.daily[-int(raw) :]
    return JSON({"status": "success", "user": user.user, "usage": to_wire(doc)})
