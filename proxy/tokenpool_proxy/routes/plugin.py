"""The "Token池" plugin API (docs/proxy.md, "Plugin API"): shapes and status codes are the contract.

``/api/tokens`` hands out the user's usable Augment credentials (the plugin injects one into the
IDE), least used first; ``DELETE`` of a handed-out token counts one use so the next list prefers
another. The shared UpstreamToken is never deleted.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from tokenpool.contract.compiled import UpstreamRoute, UserRoute

from ..auth import plugin_user, plugin_user_info, services
from ..errors import PluginError
from ..responses import JSON
from ..services import Services

router = APIRouter()
PluginUser = Annotated[UserRoute, Depends(plugin_user)]
Svc = Annotated[Services, Depends(services)]


def plugin_time(value: str | float | None) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` (UTC), the original's SQLite timestamp format."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, float):
            when = datetime.fromtimestamp(value, UTC)
        else:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        return str(value)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def usable_tokens(svc: Services, user: UserRoute) -> list[UpstreamRoute]:
    """Allocated Augment tokens this proxy would route to right now (in allocation order): the
    balancer's own predicate, so a token is never handed out that the chat path would refuse."""
    now = svc.health.clock()
    out = []
    for alloc in user.upstreams:
        route = svc.index.upstream(alloc.name)
        if route is not None and route.provider == "Augment" and svc.health.routable(route, now):
            out.append(route)
    return out


@router.get("/api/user/info")
async def user_info(request: Request, user: Annotated[UserRoute, Depends(plugin_user_info)]) -> JSON:
    return JSON(
        {
            "status": "success",
            "user": {
                "id": user.uid or user.user,
                "username": user.user,
                "email": user.email,
                "token_quota": user.token_quota,
                "status": "active",
                "created_at": plugin_time(user.created_at),
            },
        }
    )


@router.get("/api/tokens")
async def list_tokens(user: PluginUser, svc: Svc) -> JSON:
    rows: list[tuple[int, float, dict[str, Any]]] = []
    for route in usable_tokens(svc, user):
        counter = svc.usage.upstream_counter(route.name)
        row = {
            "token": route.token,
            "tenant_url": route.endpoint,
            "usage_count": counter.count,
            "last_used": plugin_time(counter.last_used),
            "status": "active",
        }
        rows.append((counter.count, counter.last_used or 0.0, row))
    rows.sort(key=lambda r: (r[0], r[1]))  # stable: ties keep the allocation order
    return JSON({"status": "success", "tokens": [r[2] for r in rows], "total_count": len(rows)})


async def _delete(token: str, user: UserRoute, svc: Services) -> JSON:
    for alloc in user.upstreams:
        route = svc.index.upstream(alloc.name)
        if route is not None and hmac.compare_digest(route.token.encode(), token.encode()):
            svc.usage.record(user.user, route.name, "handout")
            return JSON({"status": "success"})
    raise PluginError(404, "Token not found", with_status=True)


@router.delete("/api/tokens/{token}")
async def delete_token(token: str, user: PluginUser, svc: Svc) -> JSON:
    return await _delete(token, user, svc)


@router.delete("/api/token/{token}")
async def delete_token_singular(token: str, user: PluginUser, svc: Svc) -> JSON:
    return await _delete(token, user, svc)
