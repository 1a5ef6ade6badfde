"""The admin CLI's listings: users and upstream tokens with readiness and usage from status.

Usage comes from ``status.usage`` as the proxy writes it (:mod:`tokenpool.contract.status_fields`);
"today" is the current UTC day, so a ``today`` block left from an earlier day counts as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tokenpool.cli.operations import Target, explain
from tokenpool.contract import compiled as contract
from tokenpool.contract.status_fields import Counts, Usage, utc_date
from tokenpool.kube.client import KubeError, cr_path


async def _list(target: Target, plural: str) -> list[dict[str, Any]]:
    try:
        res = await target.kube.list(cr_path(target.namespace, plural))
    except KubeError as exc:
        raise explain(exc, f"{plural} in {target.namespace}") from exc
    return sorted(res["items"], key=lambda o: o["metadata"]["name"])


def _condition(obj: dict[str, Any], ctype: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return f"{cond.get('status')}" + (f" ({cond['reason']})" if cond.get("status") != "True" else "")
    return "-"


@dataclass(frozen=True)
class UsageColumns:
    today: Counts
    total: Counts
    last_used: str

    @property
    def credits_today(self) -> str:
        """What upstreams that price answers reported today, ``-`` where none did."""
        return "-" if self.today.credits is None else f"{self.today.credits:g}"

    @classmethod
    def of(cls, obj: dict[str, Any]) -> UsageColumns:
        usage = Usage.model_validate((obj.get("status") or {}).get("usage") or {})
        today = usage.today if usage.today and usage.today.date == utc_date(datetime.now(UTC)) else None
        return cls(
            today=Counts.model_validate(today.model_dump()) if today else Counts(),
            total=usage.total,
            last_used=usage.last_used_at or "-",
        )


async def user_rows(target: Target) -> list[dict[str, str]]:
    rows = []
    for obj in await _list(target, contract.PLURAL_USER):
        spec, status, usage = obj.get("spec") or {}, obj.get("status") or {}, UsageColumns.of(obj)
        allocated = status.get("allocatedTokens")
        rows.append(
            {
                "NAME": obj["metadata"]["name"],
                "ROLE": str(spec.get("role", "User")),
                "QUOTA": str(spec.get("tokenQuota", "-")),
                "TOKENS": str(len(allocated) if isinstance(allocated, list) else (allocated or 0)),
                "READY": _condition(obj, "Ready"),
                "SUSPENDED": "yes" if spec.get("suspended") else "no",
                "REQ TODAY": str(usage.today.requests),
                "ERR TODAY": str(usage.today.errors),
                "REQ TOTAL": str(usage.total.requests),
                "CREDITS TODAY": usage.credits_today,
                "LAST USED": usage.last_used,
            }
        )
    return rows


async def token_rows(target: Target) -> list[dict[str, str]]:
    rows = []
    for obj in await _list(target, contract.PLURAL_UPSTREAM):
        spec, status, usage = obj.get("spec") or {}, obj.get("status") or {}, UsageColumns.of(obj)
        rows.append(
            {
                "NAME": obj["metadata"]["name"],
                "PROVIDER": str(spec.get("provider", "-")),
                "ENDPOINT": str(spec.get("endpoint", "-")),
                "READY": _condition(obj, "Ready"),
                "HEALTHY": _condition(obj, "Healthy"),
                "ALLOCATIONS": str(status.get("allocations", 0)),
                "REQ TODAY": str(usage.today.requests),
                "ERR TODAY": str(usage.today.errors),
                "REQ TOTAL": str(usage.total.requests),
                "CREDITS TODAY": usage.credits_today,
                "LAST USED": usage.last_used,
            }
        )
    return rows


def table(rows: list[dict[str, str]]) -> str:
    """kubectl-style columns."""
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["   ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["   ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
