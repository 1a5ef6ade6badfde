"""Writing what the operator owns: compiled routes, personal-token Secrets, statuses, Events.

Every write is skipped when the content is unchanged: compiled objects carry a content-hash
annotation (compared with what is in the API, or with what this process last wrote while the
cache is trusted), and statuses are compared with what was last written or observed.
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient, KubeError, core_path, cr_path
from tokenpool_operator.conditions import now_rfc3339
from tokenpool_operator.reconcile_metrics import OperatorMetrics

log = logging.getLogger(__name__)
Body = dict[str, Any]


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class Writer:
    """The operator's writes, over a cache of the objects it owns (compiled routes and
    personal-token Secrets: label ``app.kubernetes.io/managed-by``).

    The cache is filled by one listing per kind at startup and at each resync, and kept current
    by the watch and by the answers to the operator's own writes, so a reconcile reads nothing
    from the API to know whether its objects exist or are up to date.
    """

    def __init__(self, kube: KubeClient, metrics: OperatorMetrics | None = None) -> None:
        self.kube = kube
        self.metrics = metrics or OperatorMetrics()
        self._owned: dict[tuple[str, str, str], Body] = {}  # (plural, ns, name) → object
        self._complete = False  # True once listed: absence from the cache means "does not exist"
        self._statuses: dict[tuple[str, str, str], Body] = {}  # (plural, ns, name) → last status

    async def load(self, namespaces: list[str]) -> None:
        """List the owned Secrets and ConfigMaps (again at each resync: an entry the listing does
        not have, and that is not newer than the listing, was deleted unnoticed)."""
        for plural in ("secrets", "configmaps"):
            for ns in namespaces or [""]:
                path = core_path(ns, plural) if ns else f"/api/v1/{plural}"
                listed, snapshot = await self._list(path)
                for key in [k for k in self._owned if k[0] == plural and (not ns or k[1] == ns)]:
                    rv = self._owned[key]["metadata"].get("resourceVersion", "")
                    if key not in listed and not _newer(rv, snapshot):
                        del self._owned[key]
                for item in listed.values():
                    self.remember(plural, item)
        self._complete = True
        self._statuses.clear()

    async def _list(self, path: str) -> tuple[dict[tuple[str, str, str], Body], str]:
        plural = path.rsplit("/", 1)[1]
        listed = await self.kube.list(path, {"labelSelector": f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"})
        items = {(plural, i["metadata"]["namespace"], i["metadata"]["name"]): i for i in listed["items"]}
        return items, str((listed.get("metadata") or {}).get("resourceVersion", ""))

    def remember(self, plural: str, obj: Body) -> bool:
        """Record an owned object as the API has it; False if the cache already had this version
        or a newer one (a late watch event never overwrites a newer write)."""
        meta = obj["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        old = self._owned.get(key)
        if old is not None and not _newer(
            meta.get("resourceVersion", ""), old["metadata"].get("resourceVersion", "")
        ):
            return False
        self._owned[key] = obj
        return True

    def compiled(self, plural: str, ns: str, name: str) -> Body | None:
        """An owned object as last written or seen (e.g. the route a health check uses)."""
        return self._owned.get((plural, ns, name))

    def forget(self, plural: str, ns: str, name: str) -> None:
        self._owned.pop((plural, ns, name), None)

    async def lookup(self, plural: str, ns: str, name: str) -> Body | None:
        key = (plural, ns, name)
        if key in self._owned or self._complete:
            return self._owned.get(key)
        return await self.kube.get(core_path(ns, plural, name))

    async def put(self, plural: str, obj: Body, exists: bool) -> None:
        """Create (``exists`` False) or replace an owned object; remembers the API's answer."""
        meta = obj["metadata"]
        ns, name = meta["namespace"], meta["name"]
        try:
            if exists:
                written = await self.kube.replace(core_path(ns, plural, name), obj)
            else:
                written = await self.kube.create(core_path(ns, plural), obj)
        except KubeError as exc:
            if exc.status not in (404, 409):
                raise
            # The cache was behind (created or deleted meanwhile): ask the API, then write.
            self.forget(plural, ns, name)
            current = await self.kube.get(core_path(ns, plural, name))
            exists = current is not None
            if current is None:
                written = await self.kube.create(core_path(ns, plural), obj)
            else:
                written = await self.kube.replace(core_path(ns, plural, name), obj)
        self.metrics.wrote(plural, "updated" if exists else "created")
        if written:
            self.remember(plural, written)

    async def ensure_compiled(
        self, plural: str, owner: Body, name: str, route: str, data: dict[str, str]
    ) -> bool:
        """Create or replace a compiled ConfigMap/Secret when its content changed; True if written."""
        ns = owner["metadata"]["namespace"]
        meta = c.compiled_metadata(name, route, owner, data)
        digest = meta["annotations"][c.ANNOTATION_CONTENT_HASH]
        existing = await self.lookup(plural, ns, name)
        if existing is not None and _owned_with(existing, digest, owner):
            return False
        obj: Body = {
            "apiVersion": "v1",
            "kind": "ConfigMap" if plural == "configmaps" else "Secret",
            "metadata": meta,
        }
        if plural == "secrets":
            obj["type"] = "Opaque"
            obj["data"] = {k: b64(v) for k, v in data.items()}
        else:
            obj["data"] = data
        await self.put(plural, obj, existing is not None)
        return True

    async def delete(self, plural: str, ns: str, name: str, force: bool = False) -> None:
        """Delete an owned object (``force``: any object, e.g. one the operator does not own)."""
        if not force and self._complete and (plural, ns, name) not in self._owned:
            return  # known not to exist
        self.forget(plural, ns, name)
        await self.kube.delete(core_path(ns, plural, name))
        self.metrics.wrote(plural, "deleted")

    async def write_personal_token(
        self, owner: Body, token: str, rotated_for: str, existing: Body | None
    ) -> None:
        meta = owner["metadata"]
        name = c.personal_token_secret_name(meta["name"])
        obj: Body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {c.LABEL_OWNER: meta["name"], c.LABEL_MANAGED_BY: c.MANAGED_BY},
                "annotations": {c.ANNOTATION_ROTATED_FOR: rotated_for},
                "ownerReferences": c.compiled_metadata(name, "", owner, {})["ownerReferences"],
            },
            "data": {c.PERSONAL_TOKEN_KEY: b64(token)},
        }
        if existing is not None:  # optimistic concurrency: never overwrite a token we did not see
            obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            written = await self.kube.replace(core_path(meta["namespace"], "secrets", name), obj)
        else:
            written = await self.kube.create(core_path(meta["namespace"], "secrets"), obj)
        self.metrics.wrote("secrets", "updated" if existing is not None else "created")
        if written:
            self.remember("secrets", written)

    async def patch_status(self, plural: str, body: Body, status: Body) -> bool:
        """Merge-patch the operator's own status fields when they differ from the last known."""
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        known = self._statuses.get(key)
        if known is None:
            known = dict(body.get("status") or {})
        if all(known.get(k) == v for k, v in status.items()):
            return False
        try:
            await self.kube.merge_patch(
                cr_path(meta["namespace"], plural, meta["name"], "status"), {"status": status}
            )
        except KubeError as exc:
            self._statuses.pop(key, None)
            if exc.status == 404:  # deleted meanwhile: nothing left to report on
                return False
            raise
        self.metrics.wrote(plural, "patched")
        self._statuses[key] = {**known, **status}
        return True

    def drop_status(self, plural: str, ns: str, name: str) -> None:
        self._statuses.pop((plural, ns, name), None)

    async def event(self, body: Body, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event on a custom resource. ``message`` must never hold a secret."""
        meta = body["metadata"]
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion") or c.API_VERSION,
                "kind": body.get("kind", ""),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": c.MANAGED_BY},
            "reportingComponent": c.MANAGED_BY,
            "reportingInstance": c.MANAGED_BY,
        }
        try:
            await self.kube.create(core_path(meta["namespace"], "events"), event)
            self.metrics.event(type_, reason)
        except KubeError as exc:  # an Event is best effort: never fail a reconcile for it
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc)


def _newer(rv: str, than: str) -> bool:
    """resourceVersions are etcd revisions in every real API server; compare them as numbers
    when they are, and treat any other difference as news."""
    try:
        return int(rv) > int(than)
    except ValueError:
        return rv != than


def _owned_with(obj: Body, digest: str, owner: Body) -> bool:
    """Is ``obj`` owned by ``owner`` with content of hash ``digest``? The hash is recomputed from
    the data, not read from the annotation, so a hand edit of the data is noticed."""
    meta = obj.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    if (meta.get("annotations") or {}).get(c.ANNOTATION_CONTENT_HASH) != digest:
        return False
    data = obj.get("data") or {}
    if obj.get("kind") == "Secret" or "type" in obj:
        try:
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        except (ValueError, UnicodeDecodeError):
            return False
    return c.content_hash(data) == digest and any(r.get("uid") == owner["metadata"]["uid"] for r in refs)
