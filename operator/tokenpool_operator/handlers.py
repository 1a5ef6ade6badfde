"""Kopf registrations: indexes over the custom resources, and thin event handlers that only
enqueue the affected users/tokens for :mod:`tokenpool_operator.sync`.

Handlers are ``on.event`` (level-based: every watch event, including the initial listing after a
restart, which is the "resume"): they keep nothing in annotations, so the operator never writes
to objects it does not own. They are async so that Kopf runs them on the event loop instead of
handing each event to its thread pool. Their cost is a fingerprint comparison; the operator's own status
patches change no fingerprint and therefore enqueue nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from tokenpool import contract as c
from tokenpool_operator import health
from tokenpool_operator.kube import Kube, load_configuration
from tokenpool_operator.state import State
from tokenpool_operator.sync import Reconciler
from tokenpool_operator.users import rotation_request
from tokenpool_operator.views import granted_tokens, slim, token_view

G, V = c.GROUP, c.VERSION
INDEXES = (
    "tp_users",
    "tp_tokens",
    "tp_allocations",
    "tp_allocation_users",
    "tp_token_namers",
    "tp_token_secrets",
    "tp_user_secrets",
)
log = logging.getLogger(__name__)


# ---- indexes (Kopf fills them completely before any handler runs) ----------------------------


@kopf.index(G, V, c.PLURAL_USER)
async def tp_users(namespace: Any, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): slim(dict(body))}


@kopf.index(G, V, c.PLURAL_UPSTREAM)
async def tp_tokens(namespace: Any, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[Any, Any]:
    state: State = memo.state
    state.put_token(namespace, token_view(dict(body), state.eligible.get((namespace, name))))
    return {(namespace, name): slim(dict(body))}


@kopf.index(G, V, c.PLURAL_ALLOCATION)
async def tp_allocations(
    namespace: Any, name: str, body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> dict[Any, Any]:
    # Seeding here (not in a handler) makes the grant book complete before the first decision.
    memo.state.book.seed((namespace, name), granted_tokens(dict(body)))
    return {(namespace, spec.get("user", "")): slim(dict(body))}


@kopf.index(G, V, c.PLURAL_ALLOCATION)
async def tp_allocation_users(namespace: Any, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): spec.get("user", "")}


@kopf.index(G, V, c.PLURAL_ALLOCATION)
async def tp_token_namers(namespace: Any, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, token): spec.get("user", "") for token in spec.get("tokens") or ()}


@kopf.index(G, V, c.PLURAL_UPSTREAM)
async def tp_token_secrets(namespace: Any, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, (spec.get("credentialSecretRef") or {}).get("name", "")): name}


@kopf.index(G, V, c.PLURAL_USER)
async def tp_user_secrets(namespace: Any, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any] | None:
    ref = spec.get("personalTokenSecretRef")
    return {(namespace, ref["name"]): name} if ref else None


# ---- event handlers: enqueue only ----------------------------------------------------------


@kopf.on.event(G, V, c.PLURAL_USER)
async def user_event(
    type: str | None, namespace: Any, name: str, meta: kopf.Meta, memo: kopf.Memo, **_: Any
) -> None:
    state: State = memo.state
    if type == "DELETED":
        state.forget("user", namespace, name)
        memo.reconciler.writer.drop_status(c.PLURAL_USER, namespace, name)
        memo.reconciler.writer.forget("configmaps", namespace, c.user_route_name(name))
        memo.reconciler.user(namespace, name)  # its allocations now report UserNotFound
    elif state.changed("user", namespace, name, (meta.get("generation"), rotation_request(dict(meta)))):
        memo.reconciler.user(namespace, name)


@kopf.on.event(G, V, c.PLURAL_ALLOCATION)
async def allocation_event(
    type: str | None,
    namespace: Any,
    name: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    state: State = memo.state
    rec: Reconciler = memo.reconciler
    user = spec.get("user", "")
    if type == "DELETED":
        state.forget("allocation", namespace, name)
        rec.writer.drop_status(c.PLURAL_ALLOCATION, namespace, name)
        for token in state.book.release((namespace, name)):
            rec.count(namespace, token)
            rec.token_users(namespace, token)  # freed capacity
        rec.user(namespace, user)
    elif state.changed("allocation", namespace, name, meta.get("generation")):
        rec.user(namespace, user)


@kopf.on.event(G, V, c.PLURAL_UPSTREAM)
async def token_event(
    type: str | None,
    namespace: Any,
    name: str,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    state: State = memo.state
    rec: Reconciler = memo.reconciler
    if type == "DELETED":
        state.forget("token", namespace, name)
        state.drop_token(namespace, name)
        rec.writer.drop_status(c.PLURAL_UPSTREAM, namespace, name)
        rec.writer.forget("secrets", namespace, c.upstream_route_name(name))
        rec.token_users(namespace, name)
        return
    fingerprint = (meta.get("generation"), dict(meta.get("labels") or {}), repr(status.get("health")))
    if state.changed("token", namespace, name, fingerprint):
        rec.token(namespace, name)


@kopf.on.event("", "v1", "secrets")
async def secret_event(
    type: str | None, namespace: Any, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """Credential and BYO token Secrets heal their users without any edit of the CRs; deleted
    compiled Secrets are recreated."""
    rec: Reconciler = memo.reconciler
    if labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY:
        if type == "DELETED":
            rec.writer.forget("secrets", namespace, name)
            owner = labels.get(c.LABEL_OWNER, "")
            if labels.get(c.LABEL_ROUTE) == c.ROUTE_UPSTREAM:
                rec.token(namespace, owner)
            else:
                rec.user(namespace, owner)
        return
    for token in rec.ix["tp_token_secrets"].get((namespace, name), ()):
        rec.token(namespace, token)
    for user in rec.ix["tp_user_secrets"].get((namespace, name), ()):
        rec.user(namespace, user)


@kopf.on.event("", "v1", "configmaps", labels={c.LABEL_MANAGED_BY: c.MANAGED_BY})
async def route_event(
    type: str | None, namespace: Any, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    if type == "DELETED":
        memo.reconciler.writer.forget("configmaps", namespace, name)
        memo.reconciler.user(namespace, labels.get(c.LABEL_OWNER, ""))


# ---- lifecycle -------------------------------------------------------------------------------


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    settings.posting.level = logging.WARNING  # our own Events are explicit; Kopf posts only problems
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.tokenpool.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="operator.tokenpool.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "operator.tokenpool.io/finalizer"
    settings.watching.server_timeout = 300
    kube = Kube(load_configuration())
    rec = Reconciler(memo.settings, kube, memo.state, {name: kwargs[name] for name in INDEXES})
    memo.reconciler = rec
    rec.queue.start()
    memo.health = await health.serve(rec.queue, memo.settings.liveness_host, memo.settings.liveness_port)
    memo.resync = asyncio.create_task(_resync(rec, memo.settings.resync_seconds))


async def _resync(rec: Reconciler, every: float) -> None:
    """The safety net: periodically re-reconcile everything, comparing with the API (not the
    write cache), so drift such as a hand-edited compiled object is repaired."""
    while True:
        await asyncio.sleep(every)
        rec.writer.clear_cache()
        for ns, name in list(rec.ix["tp_users"].keys()):
            rec.user(ns, name)
        for ns, user in list(rec.ix["tp_allocations"].keys()):
            rec.user(ns, user)
        for ns, name in list(rec.ix["tp_tokens"].keys()):
            rec.token(ns, name)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rec: Reconciler | None = getattr(memo, "reconciler", None)
    if rec is None:
        return
    memo.resync.cancel()
    await memo.health.cleanup()
    await rec.queue.stop()
    await rec.kube.close()
