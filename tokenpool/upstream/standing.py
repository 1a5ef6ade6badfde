"""Reading an Augment account's standing: plan and expiry, credits, default model.

Three calls, each ``POST {tenant}<path>`` with body ``{}`` and the headers of a probe
(docs/augment-protocol.md, "Other endpoints"): ``subscription-info``, ``get-credit-info``,
``get-models``. Any of them may be switched off upstream at any time: an endpoint that does not
answer 200 with the expected shape makes its part of the standing *unknown* — never a failure of
the account. Only 401/403 say something about the account itself (expired or banned): the
reading counts as refused (:func:`tokenpool.contract.account_status.retirement` retires an
account only after two refusals in a row).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from tokenpool.contract.account_status import AccountStatus
from tokenpool.contract.status_fields import rfc3339

ENDPOINTS = {"subscription": "subscription-info", "credits": "get-credit-info", "models": "get-models"}


@dataclass(frozen=True)
class Reading:
    account: AccountStatus
    refused_status: int | None  # 401/403 from any endpoint: the account itself was refused


def _rfc3339(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return rfc3339(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def parse_subscription(doc: Any) -> dict[str, Any] | None:
    sub = doc.get("subscription") if isinstance(doc, dict) else None
    if not isinstance(sub, dict):
        return None
    if isinstance(sub.get("InactiveSubscription"), dict):
        return {"active": False}
    active = sub.get("ActiveSubscription")
    if not isinstance(active, dict):
        return None
    plan = next(
        (active[k] for k in ("plan_name", "plan", "billing_plan") if isinstance(active.get(k), str)), None
    )
    depleted = active.get("usage_balance_depleted")
    return {
        "active": True,
        "plan": plan,
        "expires_at": _rfc3339(active.get("end_date")),
        "depleted": depleted if isinstance(depleted, bool) else None,
    }


def parse_credits(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    numbers: list[int] = []
    for value in (doc.get("usage_units_total"), doc.get("usage_units_remaining")):
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            return None
        numbers.append(int(value))
    return {"credits_total": numbers[0], "credits_remaining": numbers[1]}


def parse_models(doc: Any) -> dict[str, Any] | None:
    model = doc.get("default_model") if isinstance(doc, dict) else None
    return {"default_model": model} if isinstance(model, str) and model else None


PARSERS = {"subscription": parse_subscription, "credits": parse_credits, "models": parse_models}


async def _call(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int | None, Any]:
    try:
        async with session.post(url, json={}, headers=headers) as resp:
            if resp.status != 200:
                return resp.status, None
            return 200, await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None, None


async def read_standing(
    session: aiohttp.ClientSession, tenant_url: str, headers: dict[str, str], now: datetime | None = None
) -> Reading:
    """One reading of all three endpoints, concurrently (``headers``: :func:`~tokenpool.upstream.
    probe.augment_headers`)."""
    groups = list(ENDPOINTS)
    answers = await asyncio.gather(*(_call(session, tenant_url + ENDPOINTS[g], headers) for g in groups))
    fields: dict[str, Any] = {}
    unknown: list[str] = []
    refused: int | None = None
    for group, (status, doc) in zip(groups, answers, strict=True):
        if status in (401, 403):
            refused = status
        parsed = PARSERS[group](doc) if status == 200 else None
        if parsed is None:
            unknown.append(group)
        else:
            fields.update(parsed)
    checked = rfc3339(now or datetime.now(UTC))
    return Reading(AccountStatus(**fields, checked_at=checked, unknown=unknown), refused)
