"""Kopf registrations: thin event handlers feeding the cache and the work queue of
:mod:`tokenpool_operator.sync`, plus the operator's startup and cleanup.

Handlers are ``on.event`` (level-based: every watch event, including the initial listing after a
restart, which is the "resume"): they keep nothing in annotations, so the operator never writes
to objects it does not own. Their cost is a fingerprint comparison; the operator's own status
patches change no fingerprint and therefore enqueue nothing. They are async so that Kopf runs
them on the event loop instead of handing each event to its thread pool. No ``@kopf.index``:
see :mod:`tokenpool_operator.cache` for why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from tokenpool.contract import compiled as c
from tokenpool.kube import credentials
from tokenpool.kube.client import KubeClient
from tokenpool_operator import listing, liveness
from tokenpool_operator.cache import Cache
from tokenpool_operator.sync import Reconciler

G, V = c.GROUP, c.VERSION
log = logging.getLogger(__name__)


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: every handler here is ``on.event``, which never diffs. Kopf still builds the
    "essence" of every event for change detection (a deep copy of the body), which was the largest
    share of the operator's CPU in the benchmark; an empty essence skips that work and stores
    nothing on the objects."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


async def _observe(kind: str, type: str | None, body: kopf.Body, memo: kopf.Memo) -> None:
    rec: Reconciler = memo.reconciler
    if type == "DELETED":
        rec.deleted(kind, body["metadata"]["namespace"], body["metadata"]["name"])
    else:
        rec.observed(kind, dict(body))


@kopf.on.event(G, V, c.PLURAL_USER)
async def user_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _observe("user", type, body, memo)


@kopf.on.event(G, V, c.PLURAL_ALLOCATION)
async def allocation_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _observe("allocation", type, body, memo)


@kopf.on.event(G, V, c.PLURAL_UPSTREAM)
async def token_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _observe("token", type, body, memo)


@kopf.on.event("", "v1", "secrets")
async def secret_event(
    type: str | None,
    namespace: Any,
    name: str,
    labels: kopf.Labels,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Credential and BYO token Secrets heal their users without any edit of the CRs; owned
    Secrets changed or deleted by someone else are repaired."""
    rec: Reconciler = memo.reconciler
    if c.LABEL_ROUTE in labels:  # a route: the operator's, or deleted
        rec.route_object("secrets", type, dict(body))
        return
    if labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY:
        _owned_changed(rec, "secrets", type, body)
        return
    for token in rec.cache.token_secrets.get((namespace, name), ()):
        rec.token(namespace, token)
    for user in rec.cache.user_secrets.get((namespace, name), ()):
        rec.user(namespace, user)


@kopf.on.event("", "v1", "configmaps", labels={c.LABEL_ROUTE: kopf.PRESENT})
async def route_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Routes are Secrets: a ConfigMap labelled as one is an older operator's (deleted quietly)
    or someone else's (deleted, with an Event)."""
    rec: Reconciler = memo.reconciler
    rec.route_object("configmaps", type, dict(body))


def _owned_changed(rec: Reconciler, plural: str, type: str | None, body: kopf.Body) -> None:
    """Keep the owned-object cache current; a version the operator did not write itself (a
    hand edit, a deletion) sends the owner back to reconcile."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if type == "DELETED":
        rec.writer.forget(plural, ns, name)
    elif not rec.writer.remember(plural, dict(body)):
        return
    owner = (meta.get("labels") or {}).get(c.LABEL_OWNER, "")
    if (meta.get("labels") or {}).get(c.LABEL_ROUTE) == c.ROUTE_UPSTREAM:
        rec.token(ns, owner)
    else:
        rec.user(ns, owner)


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """Kopf's watches use the same cluster and identity as the operator's own client (found like
    kubectl finds it: :mod:`tokenpool.kube.credentials`). Kopf calls this again after a 401."""
    cfg = credentials.load()
    token = await asyncio.to_thread(cfg.token.current) if cfg.token is not None else None
    return kopf.ConnectionInfo(
        server=cfg.server,
        default_namespace=cfg.namespace,
        ca_data=cfg.ca_data,
        insecure=cfg.insecure,
        token=token,
        certificate_data=cfg.client_cert,
        private_key_data=cfg.client_key,
        username=cfg.username,
        password=cfg.password,
        expiration=cfg.token.expires_at if cfg.token is not None else None,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own Events are explicit; Kopf posts only problems
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.tokenpool.io")
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = "operator.tokenpool.io/finalizer"
    settings.watching.server_timeout = 300
    kube = KubeClient(credentials.load())
    rec = Reconciler(memo.settings, kube, memo.state, Cache())
    memo.reconciler = rec
    loaded = await listing.load(rec, memo.settings.namespaces)
    log.info("loaded %d custom resources", loaded)
    rec.queue.start()
    memo.liveness = await liveness.serve(rec.queue, memo.settings.liveness_host, memo.settings.liveness_port)
    memo.resync = asyncio.create_task(_resync(rec, memo.settings.namespaces, memo.settings.resync_seconds))
    memo.checks = asyncio.create_task(rec.checker.run(), name="tokenpool-health-checks")
    memo.standing = asyncio.create_task(rec.standing.run(), name="tokenpool-account-standing")


async def _resync(rec: Reconciler, namespaces: list[str], every: float) -> None:
    """The safety net: periodically re-list and re-reconcile everything."""
    while True:
        await asyncio.sleep(every)
        try:
            await listing.resync(rec, namespaces)
        except Exception as exc:
            log.warning("resync failed (%s); next one in %.0fs", type(exc).__name__, every)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rec: Reconciler | None = getattr(memo, "reconciler", None)
    if rec is None:
        return
    memo.resync.cancel()
    memo.checks.cancel()
    memo.standing.cancel()
    await rec.checker.stop()
    await rec.standing.stop()
    await memo.liveness.cleanup()
    await rec.queue.stop()
    await rec.kube.close()
