"""Compact, read-only views of the custom resources, made once per watch event.

The console keeps thousands of these in memory; each holds only what the pages, the API and the
statistics read (never a secret), plus a lower-case search key. Pure functions of the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tokenpool.contract.status_fields import Health

from . import gitops
from .tallies import UsageView, usage_view
from .token_standing import Standing, standing_of

# Join requests (docs/console.md, "Joining the pool"): a PoolUser created suspended with this
# label; approving sets it to "approved", rejecting deletes the PoolUser.
LABEL_ACCESS_REQUEST = "tokenpool.io/access-request"
ACCESS_PENDING = "pending"
ACCESS_APPROVED = "approved"


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions") or ():
        if cond.get("type") == kind:
            return dict(cond)
    return {}


@dataclass(frozen=True, slots=True)
class Meta:
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: str
    labels: dict[str, str]
    gitops: str  # "Argo CD", "Flux" or ""


def _meta(obj: dict[str, Any]) -> Meta:
    m = obj.get("metadata") or {}
    return Meta(
        namespace=str(m.get("namespace") or ""),
        name=str(m.get("name") or ""),
        uid=str(m.get("uid") or ""),
        resource_version=str(m.get("resourceVersion") or ""),
        created=str(m.get("creationTimestamp") or ""),
        labels={str(k): str(v) for k, v in (m.get("labels") or {}).items()},
        gitops=gitops.managed_by(m),
    )


@dataclass(frozen=True, slots=True)
class UserRow:
    meta: Meta
    display_name: str
    email: str
    role: str
    token_quota: int | None  # None: the operator's default
    requests_per_day: int
    requests_per_minute: int
    max_concurrent_requests: int
    suspended: bool
    brings_token: bool
    access_request: str  # "", "pending" or "approved"
    ready: bool
    reason: str
    allocated: int
    usage: UsageView
    search: str = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def pending(self) -> bool:
        return self.access_request == ACCESS_PENDING

    @property
    def state(self) -> str:
        return "pending" if self.pending else "suspended" if self.suspended else "active"


def user_row(obj: dict[str, Any]) -> UserRow:
    meta = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    limits = spec.get("limits") or {}
    ready = _condition(status, "Ready")
    display, email = str(spec.get("displayName") or ""), str(spec.get("email") or "")
    quota = spec.get("tokenQuota")
    return UserRow(
        meta=meta,
        display_name=display,
        email=email,
        role=str(spec.get("role") or "User"),
        token_quota=int(quota) if quota is not None else None,
        requests_per_day=int(limits.get("requestsPerDay") or 0),
        requests_per_minute=int(limits.get("requestsPerMinute") or 0),
        max_concurrent_requests=int(limits.get("maxConcurrentRequests") or 0),
        suspended=bool(spec.get("suspended")),
        brings_token=bool(spec.get("personalTokenSecretRef")),
        access_request=meta.labels.get(LABEL_ACCESS_REQUEST, ""),
        ready=ready.get("status") == "True",
        reason=str(ready.get("reason") or ""),
        allocated=int(status.get("allocatedTokens") or 0),
        usage=usage_view(status),
        search=f"{meta.name}\n{display}\n{email}".lower(),
    )


@dataclass(frozen=True, slots=True)
class TokenRow:
    meta: Meta
    provider: str
    endpoint: str
    secret_name: str
    secret_key: str
    max_concurrency: int
    min_interval_seconds: int
    max_allocations: int
    suspended: bool
    description: str
    ready: bool
    reason: str
    healthy: bool
    health_reason: str
    allocations: int
    health: Health
    standing: Standing | None  # the account's standing (Augment, after the first reading)
    usage: UsageView
    search: str = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def retired(self) -> bool:
        return self.standing is not None and self.standing.retired

    @property
    def state(self) -> str:
        """One word for the health counts: Suspended, NotReady, Retired (the account is spent,
        ended or refused: not routed to until a reading says otherwise), Unhealthy, CoolingDown,
        Healthy."""
        if self.suspended:
            return "Suspended"
        if not self.ready:
            return "NotReady"
        if self.retired:
            return "Retired"
        if self.health.state != "Healthy":
            return self.health.state
        return "Healthy" if self.healthy else "Unhealthy"

    @property
    def state_reason(self) -> str:
        """Why the token is in its state (a CamelCase reason), "" when Healthy or Suspended."""
        state = self.state
        if state == "NotReady":
            return self.reason
        if state == "Retired" and self.standing is not None and self.standing.active is not None:
            return self.standing.active.reason
        if state in ("Unhealthy", "CoolingDown"):
            return self.health.reason or self.health_reason
        return ""


def token_row(obj: dict[str, Any]) -> TokenRow:
    meta = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("credentialSecretRef") or {}
    ready, healthy = _condition(status, "Ready"), _condition(status, "Healthy")
    try:
        health = Health.model_validate(status.get("health") or {})
    except ValidationError:
        health = Health()
    description = str(spec.get("description") or "")
    return TokenRow(
        meta=meta,
        provider=str(spec.get("provider") or "Augment"),
        endpoint=str(spec.get("endpoint") or ""),
        secret_name=str(ref.get("name") or ""),
        secret_key=str(ref.get("key") or "token"),
        max_concurrency=int(spec.get("maxConcurrency") or 1),
        min_interval_seconds=int(spec.get("minIntervalSeconds") or 0),
        max_allocations=int(spec.get("maxAllocations") or 0),
        suspended=bool(spec.get("suspended")),
        description=description,
        ready=ready.get("status") == "True",
        reason=str(ready.get("reason") or ""),
        healthy=healthy.get("status", "True") != "False",
        health_reason=str(healthy.get("reason") or ""),
        allocations=int(status.get("allocations") or 0),
        health=health,
        standing=standing_of(
            status.get("account"), _condition(status, "AccountActive"), _condition(status, "RenewalDue")
        ),
        usage=usage_view(status),
        search=f"{meta.name}\n{description}\n{spec.get('endpoint') or ''}".lower(),
    )


@dataclass(frozen=True, slots=True)
class AllocationRow:
    meta: Meta
    user: str
    tokens: tuple[str, ...]  # spec.tokens (by name)
    selector: dict[str, Any]
    count: int
    priority: int
    suspended: bool
    granted: tuple[str, ...]
    ready: bool
    reason: str
    message: str
    search: str = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta.name


def allocation_row(obj: dict[str, Any]) -> AllocationRow:
    meta = _meta(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ready = _condition(status, "Ready")
    user = str(spec.get("user") or "")
    return AllocationRow(
        meta=meta,
        user=user,
        tokens=tuple(str(t) for t in spec.get("tokens") or ()),
        selector=dict(spec.get("selector") or {}),
        count=int(spec.get("count") or 0),
        priority=int(spec["priority"]) if spec.get("priority") is not None else 1,
        suspended=bool(spec.get("suspended")),
        granted=tuple(str(t) for t in status.get("tokens") or ()),
        ready=ready.get("status") == "True",
        reason=str(ready.get("reason") or ""),
        message=str(ready.get("message") or ""),
        search=f"{meta.name}\n{user}".lower(),
    )
