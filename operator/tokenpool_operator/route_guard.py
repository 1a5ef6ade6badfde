"""Only the operator writes routes: labelled route objects it did not compile are deleted.

A Secret or ConfigMap labelled ``tokenpool.io/route`` is the operator's when it is a Secret,
named as the operator names routes (``tokenpool-user-<name>``, ``tokenpool-upstream-<name>``),
and controlled by the live PoolUser/UpstreamToken of that name *with its current uid*. Anything
else — a hand-made ConfigMap or Secret, one that points at another object's uid — is deleted,
with a Warning Event ``UnownedRouteDeleted`` on it; user-route ConfigMaps of an older operator
(routes were ConfigMaps then) are deleted quietly. The proxy applies the same test before serving
a route (proxy/tokenpool_proxy/index.py), so nothing forged is served in between.
"""

from __future__ import annotations

import logging
from typing import Any

from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient, core_path
from tokenpool_operator.cache import Cache
from tokenpool_operator.writer import Writer

log = logging.getLogger(__name__)
Body = dict[str, Any]


def owner_of(plural: str, body: Body, cache: Cache) -> tuple[str, str] | None:
    """(kind, name) of the custom resource this route object provably belongs to, or None."""
    meta = body["metadata"]
    route = (meta.get("labels") or {}).get(c.LABEL_ROUTE)
    if plural != "secrets" or route not in (c.ROUTE_USER, c.ROUTE_UPSTREAM):
        return None
    kind, table = (c.KIND_USER, cache.users) if route == c.ROUTE_USER else (c.KIND_UPSTREAM, cache.tokens)
    ref = next((r for r in meta.get("ownerReferences") or () if r.get("controller") is True), None)
    if ref is None:
        return None
    owner = str(ref.get("name", ""))
    expected = c.user_route_name(owner) if kind == c.KIND_USER else c.upstream_route_name(owner)
    cr = table.get((meta["namespace"], owner))
    uid = c.controller_uid(body, kind, owner)
    if meta["name"] != expected or cr is None or not uid or cr["metadata"].get("uid") != uid:
        return None
    return kind, owner


def _legacy_user_route(body: Body, cache: Cache) -> bool:
    """A user-route ConfigMap of an older operator, still controlled by its live PoolUser."""
    meta = body["metadata"]
    if (meta.get("labels") or {}).get(c.LABEL_MANAGED_BY) != c.MANAGED_BY:
        return False
    for ref in meta.get("ownerReferences") or ():
        user = cache.users.get((meta["namespace"], str(ref.get("name"))))
        if ref.get("controller") is True and ref.get("kind") == c.KIND_USER and user is not None:
            return bool(user["metadata"].get("uid") == ref.get("uid"))
    return False


async def reject(kube: KubeClient, writer: Writer, cache: Cache, ns: str, key: str) -> None:
    """Delete the route object ``key`` (``plural/name``) unless it turned out to be the operator's."""
    plural, name = key.split("/", 1)
    body = await kube.get(core_path(ns, plural, name))
    if body is None or owner_of(plural, body, cache) is not None:
        return  # gone, or the operator's after all
    legacy = plural == "configmaps" and _legacy_user_route(body, cache)
    await writer.delete(plural, ns, name, force=True)
    kind = "ConfigMap" if plural == "configmaps" else "Secret"
    if legacy:
        log.info("deleted the user route ConfigMap %s/%s of an older operator", ns, name)
        return
    label = (body["metadata"].get("labels") or {}).get(c.LABEL_ROUTE)
    log.warning("deleted %s %s/%s: labelled as a route but not the operator's", kind, ns, name)
    await writer.event(
        {"apiVersion": "v1", "kind": kind, "metadata": body["metadata"]},
        "Warning",
        "UnownedRouteDeleted",
        f"{kind} {name!r} is labelled {c.LABEL_ROUTE}={label} but was not compiled by the operator "
        "(routes are Secrets controlled by the PoolUser/UpstreamToken they name); deleted so that "
        "the proxy never serves it",
    )
