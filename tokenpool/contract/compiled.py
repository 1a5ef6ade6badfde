"""The compiled objects: the one contract between the operator (writer) and the proxy (reader).

The operator compiles the custom resources into two kinds of objects in the same namespace:

* Secret ``tokenpool-user-<user>`` (label ``tokenpool.io/route=user``), key ``route.json``:
  a :class:`UserRoute`. It holds the sha256 of the user's personal token, never the token.
  (A Secret, not a ConfigMap: the right to create ConfigMaps is commonly granted, and a route
  decides who gets which upstream credentials.)
* Secret ``tokenpool-upstream-<token>`` (label ``tokenpool.io/route=upstream``), key
  ``upstream.json``: an :class:`UpstreamRoute` with the normalised credential and policy.

Besides, the user's personal token lives in Secret ``<user>-personal-token`` (key ``token``),
which is for the user/admin to read; the proxy never needs it.

Every route object carries a controller ownerReference to the PoolUser / UpstreamToken it is
about; the proxy serves it only when that reference carries the custom resource's current uid
(:func:`controller_uid`), and the operator deletes labelled route objects it does not own.

Nothing else in the code base spells these names, labels or keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GROUP = "tokenpool.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KIND_USER = "PoolUser"
KIND_UPSTREAM = "UpstreamToken"
KIND_ALLOCATION = "TokenAllocation"
PLURAL_USER = "poolusers"
PLURAL_UPSTREAM = "upstreamtokens"
PLURAL_ALLOCATION = "tokenallocations"

LABEL_ROUTE = "tokenpool.io/route"
ROUTE_USER = "user"
ROUTE_UPSTREAM = "upstream"
LABEL_OWNER = "tokenpool.io/owner"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "tokenpool-operator"
ANNOTATION_CONTENT_HASH = "tokenpool.io/content-hash"
# On a PoolUser: set to a new value to rotate the generated personal token. The personal-token
# Secret records the value it was last rotated for, so each value rotates exactly once.
ANNOTATION_ROTATE_PERSONAL_TOKEN = "tokenpool.io/rotate-personal-token"  # noqa: S105 (a name)
ANNOTATION_ROTATED_FOR = "tokenpool.io/rotated-for"
# On an UpstreamToken: set to a new value (a timestamp) to ask for a health check of the token now
# instead of at its next scheduled probe (the console's "check now" and `tokenpool tokens check`
# set it). The operator records the value it handled in status.check.request; a passed check
# clears an Unhealthy verdict.
ANNOTATION_CHECK_NOW = "tokenpool.io/check-now"

USER_ROUTE_KEY = "route.json"
UPSTREAM_ROUTE_KEY = "upstream.json"
PERSONAL_TOKEN_KEY = "token"  # noqa: S105 (a data key)
DEFAULT_CREDENTIAL_KEY = "token"

Provider = Literal["Augment", "OpenAI", "Anthropic"]
Role = Literal["User", "Admin"]


def personal_token_secret_name(user: str) -> str:
    return f"{user}-personal-token"


def user_route_name(user: str) -> str:
    return f"tokenpool-user-{user}"


def upstream_route_name(token: str) -> str:
    return f"tokenpool-upstream-{token}"


def hash_personal_token(token: str) -> str:
    """The index key of a user route: sha256 hex of the personal token."""
    return hashlib.sha256(token.encode()).hexdigest()


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Limits(_Doc):
    requests_per_day: int = Field(default=0, alias="requestsPerDay", ge=0)
    requests_per_minute: int = Field(default=0, alias="requestsPerMinute", ge=0)
    max_concurrent_requests: int = Field(default=0, alias="maxConcurrentRequests", ge=0)


class AllocatedUpstream(_Doc):
    name: str
    priority: int = 1


class UserRoute(_Doc):
    """What the proxy needs to authenticate a user and pick their upstream tokens."""

    user: str
    uid: str = ""
    token_sha256: str = Field(alias="tokenSha256")
    role: Role = "User"
    suspended: bool = False
    display_name: str = Field("", alias="displayName")
    email: str = ""
    token_quota: int = Field(0, alias="tokenQuota")
    created_at: str = Field("", alias="createdAt")
    limits: Limits = Limits()
    # Ordered by priority (lower first), then allocation age: the balancer's candidate order.
    upstreams: tuple[AllocatedUpstream, ...] = ()


class UpstreamRoute(_Doc):
    """A pooled upstream credential with its policy and the health the operator last compiled."""

    name: str
    provider: Provider = "Augment"
    endpoint: str
    token: str = Field(repr=False)
    max_concurrency: int = Field(1, alias="maxConcurrency", ge=1)
    min_interval_seconds: float = Field(0, alias="minIntervalSeconds", ge=0)
    suspended: bool = False
    healthy: bool = True
    health_reason: str = Field("", alias="healthReason")


def dump(doc: _Doc) -> str:
    """Canonical JSON (sorted keys, camelCase): stable bytes, so content hashes are stable."""
    return json.dumps(doc.model_dump(by_alias=True, mode="json"), sort_keys=True, separators=(",", ":"))


def content_hash(data: dict[str, str]) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def compiled_metadata(name: str, route: str, owner: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    """Metadata every compiled object carries: route label, owner, managed-by, content hash."""
    meta = owner["metadata"]
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": {LABEL_ROUTE: route, LABEL_OWNER: meta["name"], LABEL_MANAGED_BY: MANAGED_BY},
        "annotations": {ANNOTATION_CONTENT_HASH: content_hash(data)},
        "ownerReferences": [
            {
                "apiVersion": owner.get("apiVersion", API_VERSION),
                "kind": owner["kind"],
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def controller_uid(obj: dict[str, Any], kind: str, name: str) -> str:
    """The uid of ``obj``'s controller ownerReference when it names the custom resource ``kind``
    / ``name`` of this API group, else "" (the object is not that resource's compiled route)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") is True:
            ok = ref.get("kind") == kind and ref.get("name") == name
            ok = ok and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
            return str(ref.get("uid") or "") if ok else ""
    return ""


def parse_user_route(data: dict[str, str]) -> UserRoute:
    """``data`` is the Secret's data already base64-decoded."""
    return UserRoute.model_validate_json(data[USER_ROUTE_KEY])


def parse_upstream_route(data: dict[str, str]) -> UpstreamRoute:
    """``data`` is the Secret's data already base64-decoded."""
    return UpstreamRoute.model_validate_json(data[UPSTREAM_ROUTE_KEY])
