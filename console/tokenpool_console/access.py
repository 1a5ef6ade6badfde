"""Who may do what, and as whom the write is made (docs/console.md, "Who may do what").

* A PoolUser with ``role: Admin`` administers its own namespace and nothing else; its writes are
  made by the console's ServiceAccount, and each is recorded as an Event naming the admin.
* A Kubernetes identity may do what RBAC allows it: every action is first checked with a
  SubjectAccessReview (a clear refusal before anything is written), and every write is made
  while impersonating it, so the API server enforces RBAC again and its audit log names the
  person. Answers of the reviews are cached for a few seconds.
* Any other PoolUser only reaches the self-service endpoints (``/api/me``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import Impersonation, KubeClient, KubeError, core_path

from . import problems
from .callers import Caller

SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
log = logging.getLogger("tokenpool.console.access")


class Access:
    def __init__(self, kube: KubeClient, namespaces: list[str], cache_s: float = 5.0) -> None:
        self.kube, self.namespaces, self.cache_s = kube, namespaces, cache_s
        self._reviews: dict[tuple[Any, ...], tuple[float, bool]] = {}

    async def check(
        self,
        caller: Caller,
        namespace: str,
        verb: str,
        resource: str,
        name: str = "",
        group: str = contract.GROUP,
    ) -> None:
        """Raise 403 (or 404 for a namespace the console does not serve) unless allowed."""
        if namespace not in self.namespaces:
            raise problems.not_found(f"namespace {namespace!r}")
        if caller.is_pool_user:
            if not caller.is_pool_admin:
                raise problems.forbidden("this needs a pool admin; your account has self-service only")
            if caller.namespace != namespace:
                raise problems.forbidden(f"you administer namespace {caller.namespace!r}, not {namespace!r}")
            return
        if not await self.allowed(caller, namespace, verb, resource, name, group):
            target = f"{resource} {name!r}" if name else resource
            raise problems.forbidden(
                f"Kubernetes user {caller.name!r} may not {verb} {target} in namespace {namespace!r} (RBAC)"
            )

    async def allowed(
        self,
        caller: Caller,
        namespace: str,
        verb: str,
        resource: str,
        name: str = "",
        group: str = contract.GROUP,
    ) -> bool:
        key = (caller.name, caller.groups, namespace, verb, group, resource, name)
        cached = self._reviews.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
        if name:
            attributes["name"] = name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": caller.name, "groups": list(caller.groups), "resourceAttributes": attributes},
        }
        try:
            review = await self.kube.create(SUBJECT_ACCESS_REVIEWS, body)
        except KubeError as exc:
            raise problems.from_kube(exc, "the access review") from exc
        allowed = bool(((review or {}).get("status") or {}).get("allowed"))
        if len(self._reviews) > 50_000:
            self._reviews.clear()
        self._reviews[key] = (time.monotonic() + self.cache_s, allowed)
        return allowed

    def writer(self, caller: Caller) -> KubeClient:
        """The client a caller's writes go through (module docstring)."""
        if caller.is_pool_user:
            return self.kube
        return self.kube.impersonating(Impersonation(caller.name, caller.groups))

    async def record(self, caller: Caller, obj: dict[str, Any], reason: str, message: str) -> None:
        """An Event on ``obj`` saying who did what through the console (best effort)."""
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", contract.API_VERSION),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": ns,
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": f"{message} by {caller.describe()} through the console"[:1024],
            "type": "Normal",
            "source": {"component": "tokenpool-console"},
            "reportingComponent": "tokenpool-console",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingInstance": "tokenpool-console",
            "count": 1,
        }
        try:
            await self.kube.create(core_path(ns, "events"), event)
        except KubeError as exc:
            log.warning("could not record the %s event (%s %s)", reason, exc.status, exc.reason)
