"""The Events an UpstreamToken's reconcile posts: one per change of a condition, never one per
reconcile (the conditions before and after decide, so a restart posts nothing new)."""

from __future__ import annotations

from typing import Any

from tokenpool_operator.conditions import Cond, Condition, find


async def post(writer: Any, body: dict[str, Any], old: list[Condition] | None, conds: list[Cond]) -> None:
    """A condition turning bad (or bad for another reason) is a Warning with its reason; one
    turning good again a Normal one. ``RenewalDue`` is the other way round: True is the news."""
    for cond in conds:
        if cond.type in ("Ready", "Healthy"):
            continue
        was = find(old, cond.type) or {}
        if cond.type == "RenewalDue":
            if cond.ok and (was.get("status") != "True" or was.get("reason") != cond.reason):
                await writer.event(body, "Warning", cond.reason, f"renewal due: {cond.message}")
            elif not cond.ok and was.get("status") == "True":
                await writer.event(body, "Normal", "AccountRenewed", "no longer expiring or running out")
        elif not cond.ok and was.get("reason") != cond.reason:
            await writer.event(body, "Warning", cond.reason, cond.message)
        elif cond.ok and was.get("status") == "False":
            await writer.event(body, "Normal", cond.reason, cond.message)
    health = next(cd for cd in conds if cd.type == "Healthy")
    was_health = find(old, "Healthy") or {}
    if not health.ok and was_health.get("reason") != health.reason:
        await writer.event(body, "Warning", "Unhealthy", f"{health.reason}: {health.message}")
