"""Lightweight views of the custom resources, built from Kopf index callbacks (pure functions).

The cache keeps CR bodies slimmed; the allocation logic works on these frozen views.
"""

from __future__ import annotations

from typing import Any

from tokenpool_operator.allocations import AllocationView, TokenView
from tokenpool_operator.conditions import is_true

Body = dict[str, Any]


def allocation_view(body: Body) -> AllocationView:
    meta, spec = body["metadata"], body.get("spec") or {}
    tokens = spec.get("tokens")
    return AllocationView(
        name=meta["name"],
        user=spec.get("user", ""),
        created=meta.get("creationTimestamp") or "",
        tokens=tuple(tokens) if tokens is not None else None,
        selector=spec.get("selector"),
        count=spec.get("count") or 0,
        priority=spec.get("priority", 1),
        suspended=bool(spec.get("suspended")),
    )


def token_view(body: Body, eligible: bool | None = None) -> TokenView:
    """``eligible`` as last computed by this process; else what the status says (after a restart,
    the operator starts from its previous verdicts instead of from nothing)."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    if eligible is None:
        conds = status.get("conditions")
        eligible = is_true(conds, "Ready") and is_true(conds, "Healthy") and not spec.get("suspended")
    return TokenView(
        name=meta["name"],
        labels=dict(meta.get("labels") or {}),
        max_allocations=spec.get("maxAllocations") or 0,
        eligible=eligible,
    )


def slim(body: Body) -> Body:
    """What reconciles need of a custom resource (Kopf bodies are views; keep plain dicts)."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {
            k: meta.get(k)
            for k in ("name", "namespace", "uid", "generation", "creationTimestamp", "labels", "annotations")
        },
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
