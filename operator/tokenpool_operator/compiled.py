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

from tokenpool import contract as c
from tokenpool_operator.conditions import now_rfc3339
from tokenpool_operator.kube import Kube, KubeError, core_path, cr_path

log = logging.getLogger(__name__)
Body = dict[str, Any]


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class Writer:
    """The operator's writes, with a cache of content hashes it wrote (cleared by the resync)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._hashes: dict[tuple[str, str, str], str] = {}  # (plural, ns, name) → content hash
        self._statuses: dict[tuple[str, str, str], Body] = {}  # (plural, ns, name) → last status

    def forget(self, plural: str, ns: str, name: str) -> None:
        self._hashes.pop((plural, ns, name), None)

    def clear_cache(self) -> None:
        """Next writes compare against the API again (catches hand-edited compiled objects)."""
        self._hashes.clear()
        self._statuses.clear()

    async def ensure_compiled(
        self, plural: str, owner: Body, name: str, route: str, data: dict[str, str]
    ) -> bool:
        """Create or replace a compiled ConfigMap/Secret when its content changed; True if written."""
        ns = owner["metadata"]["namespace"]
        meta = c.compiled_metadata(name, route, owner, data)
        digest = meta["annotations"][c.ANNOTATION_CONTENT_HASH]
        key = (plural, ns, name)
        if self._hashes.get(key) == digest:
            return False
        existing = await self.kube.get(core_path(ns, plural, name))
        if existing is not None and _owned_with(existing, digest, owner):
            self._hashes[key] = digest
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
        if existing is None:
            await self.kube.create(core_path(ns, plural), obj)
        else:
            meta["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await self.kube.replace(core_path(ns, plural, name), obj)
        self._hashes[key] = digest
        return True

    async def delete(self, plural: str, ns: str, name: str) -> None:
        self.forget(plural, ns, name)
        await self.kube.delete(core_path(ns, plural, name))

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
        if existing is None:
            await self.kube.create(core_path(meta["namespace"], "secrets"), obj)
        else:
            obj["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await self.kube.replace(core_path(meta["namespace"], "secrets", name), obj)

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
                "apiVersion": c.API_VERSION,
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
        except KubeError as exc:  # an Event is best effort: never fail a reconcile for it
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc)


def _owned_with(obj: Body, digest: str, owner: Body) -> bool:
    meta = obj.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    return (meta.get("annotations") or {}).get(c.ANNOTATION_CONTENT_HASH) == digest and any(
        r.get("uid") == owner["metadata"]["uid"] for r in refs
    )
