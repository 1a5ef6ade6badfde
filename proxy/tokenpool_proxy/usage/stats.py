"""Pool figures for ``/health``'s ``stats`` (the original's active users / tokens / allocations)
and the pool gauges of ``/metrics``, computed from the route index and the balancer's health."""

from __future__ import annotations

from ..services import Services


def _usable(svc: Services) -> set[str]:
    now = svc.health.clock()
    return {route.name for route in svc.index.upstreams() if svc.health.routable(route, now)}


def health_stats(svc: Services) -> dict[str, int]:
    """Active = not suspended and, for tokens, healthy as this replica sees it; an active
    allocation is an active user's grant of an active token."""
    usable = _usable(svc)
    users = [u for u in svc.index.users() if not u.suspended]
    allocations = sum(1 for u in users for a in u.upstreams if a.name in usable)
    return {"active_users": len(users), "active_tokens": len(usable), "active_allocations": allocations}


def pool_gauges(svc: Services) -> tuple[int, int, dict[str, int]]:
    """(upstream requests in flight, summed maxConcurrency, tokens per health state)."""
    now = svc.health.clock()
    busy = capacity = 0
    states = {"Healthy": 0, "CoolingDown": 0, "Unhealthy": 0}
    for route in svc.index.upstreams():
        state = svc.health.get(route.name)
        busy += state.in_flight
        capacity += route.max_concurrency
        if state.unhealthy_reason is not None or not route.healthy:
            states["Unhealthy"] += 1
        elif state.cooling(now):
            states["CoolingDown"] += 1
        else:
            states["Healthy"] += 1
    return busy, capacity, states
