"""Rows as the JSON API shows them (camelCase, like the custom resources)."""

from __future__ import annotations

from typing import Any

from .pool_stats import PoolStats, Ranked
from .projections import AllocationRow, TokenRow, UserRow
from .queries import Page
from .tallies import Tally
from .token_standing import standing_json


def days_json(days: list[tuple[str, Tally]]) -> list[dict[str, Any]]:
    return [{"date": d, **t.as_dict()} for d, t in days]


def user_json(u: UserRow, today: str) -> dict[str, Any]:
    return {
        "name": u.name,
        "namespace": u.meta.namespace,
        "displayName": u.display_name,
        "email": u.email,
        "role": u.role,
        "state": u.state,
        "suspended": u.suspended,
        "tokenQuota": u.token_quota,
        "limits": {
            "requestsPerDay": u.requests_per_day,
            "requestsPerMinute": u.requests_per_minute,
            "maxConcurrentRequests": u.max_concurrent_requests,
        },
        "allocatedTokens": u.allocated,
        "ready": u.ready,
        "reason": u.reason,
        "managedBy": u.meta.gitops or None,
        "createdAt": u.meta.created,
        "usage": {
            "today": u.usage.on(today).as_dict(),
            "total": u.usage.total.as_dict(),
            "lastUsedAt": u.usage.last_used_at or None,
        },
    }


def token_json(t: TokenRow, today: str) -> dict[str, Any]:
    return {
        "name": t.name,
        "namespace": t.meta.namespace,
        "provider": t.provider,
        "endpoint": t.endpoint,
        "credentialSecret": t.secret_name,
        "labels": t.meta.labels,
        "maxConcurrency": t.max_concurrency,
        "minIntervalSeconds": t.min_interval_seconds,
        "maxAllocations": t.max_allocations,
        "suspended": t.suspended,
        "description": t.description,
        "state": t.state,
        "ready": t.ready,
        "reason": t.reason,
        "health": {
            "state": t.health.state,
            "reason": t.health.reason or None,
            "restsUntil": t.health.cooldown_until,
            "lastErrorAt": t.health.last_error_at,
            "consecutiveFailures": t.health.consecutive_failures,
        },
        "account": standing_json(t.standing),
        "allocations": t.allocations,
        "managedBy": t.meta.gitops or None,
        "usage": {
            "today": t.usage.on(today).as_dict(),
            "total": t.usage.total.as_dict(),
            "lastUsedAt": t.usage.last_used_at or None,
        },
    }


def allocation_json(a: AllocationRow) -> dict[str, Any]:
    return {
        "name": a.name,
        "namespace": a.meta.namespace,
        "user": a.user,
        "tokens": list(a.tokens) or None,
        "selector": a.selector or None,
        "count": a.count or None,
        "priority": a.priority,
        "suspended": a.suspended,
        "granted": list(a.granted),
        "ready": a.ready,
        "reason": a.reason,
        "message": a.message,
        "managedBy": a.meta.gitops or None,
    }


def page_json(page: Page[Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "items": items,
        "total": page.total,
        "page": page.page,
        "perPage": page.per_page,
        "pages": page.pages,
    }


def _ranked(rows: list[Ranked]) -> list[dict[str, Any]]:
    return [{"name": r.name, "display": r.display, **r.tally.as_dict()} for r in rows]


def stats_json(s: PoolStats) -> dict[str, Any]:
    return {
        "daily": days_json(s.days),
        "period": {**s.period.as_dict(), "successRate": s.period.success_rate},
        "today": {**s.today.as_dict(), "successRate": s.today.success_rate},
        "topUsers": _ranked(s.top_users),
        "topTokens": _ranked(s.top_tokens),
        "tokenHealth": s.health,
        "users": s.users,
        "quota": s.quota,
        "allocations": s.allocations,
    }
