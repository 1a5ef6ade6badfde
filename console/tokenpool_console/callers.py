"""Who is calling: a PoolUser by personal token, or a Kubernetes identity by bearer token.

A personal token is looked up by its sha256 as the operator published it in the PoolUser's
status (``personalTokenSha256``): no API call. Any other token is given to the API server's TokenReview
(when Kubernetes logins are on); a positive answer is cached for a minute by the token's sha256,
so bearer-authenticated API scripts do not cost a review per call. Tokens are never stored.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, replace
from typing import Literal

from tokenpool.contract.compiled import hash_personal_token
from tokenpool.kube.client import KubeClient, KubeError

from .mirror import PoolMirror

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 (a path)
REVIEW_CACHE_SECONDS = 60.0
MAX_TOKEN_LENGTH = 16384


@dataclass(frozen=True)
class Caller:
    """``kind`` "pooluser": ``name`` is the PoolUser in ``namespace``, ``role`` its role.
    ``kind`` "kubernetes": ``name`` and ``groups`` as the API server authenticated them."""

    kind: Literal["pooluser", "kubernetes"]
    name: str
    namespace: str = ""
    role: str = ""
    groups: tuple[str, ...] = ()
    token_sha256: str = ""
    expires_at: float | None = None  # a Kubernetes token's expiry (epoch seconds), when it says

    @property
    def is_pool_user(self) -> bool:
        return self.kind == "pooluser"

    @property
    def is_pool_admin(self) -> bool:
        return self.kind == "pooluser" and self.role == "Admin"

    def describe(self) -> str:
        """For Events and logs: who acted (never a token)."""
        if self.is_pool_user:
            return f"PoolUser {self.namespace}/{self.name} ({self.role})"
        return f"Kubernetes user {self.name}"


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a token the API server accepted, if it is a JWT (ServiceAccount and
    OIDC tokens are): a session never outlives the token it was opened with."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"]) if isinstance(claims, dict) and "exp" in claims else None
    except (ValueError, TypeError, KeyError):
        return None


class Authenticator:
    def __init__(self, mirror: PoolMirror, kube: KubeClient, kubernetes_login: bool, audiences: list[str]):
        self.mirror, self.kube = mirror, kube
        self.kubernetes_login, self.audiences = kubernetes_login, audiences
        self._reviews: dict[str, tuple[float, Caller]] = {}

    def pool_user(self, token: str) -> Caller | None:
        digest = hash_personal_token(token)
        route = self.mirror.route(digest)
        if route is None or route.suspended:
            return None
        return Caller("pooluser", route.user, route.namespace, route.role, token_sha256=digest)

    async def kubernetes_user(self, token: str) -> Caller | None:
        if not self.kubernetes_login:
            return None
        digest = hash_personal_token(token)
        cached = self._reviews.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        spec: dict[str, object] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            review = await self.kube.create(TOKEN_REVIEWS, body)
        except KubeError:
            return None  # e.g. the console may not create reviews: no Kubernetes logins
        status = (review or {}).get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            return None
        groups = tuple(map(str, user.get("groups") or ()))
        caller = Caller("kubernetes", str(user["username"]), groups=groups, expires_at=jwt_expiry(token))
        if len(self._reviews) > 10_000:
            self._reviews.clear()
        self._reviews[digest] = (time.monotonic() + REVIEW_CACHE_SECONDS, caller)
        return caller

    async def authenticate(self, token: str) -> Caller | None:
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isprintable():
            return None
        return self.pool_user(token) or await self.kubernetes_user(token)

    def current(self, caller: Caller) -> Caller | None:
        """The caller as things are now: a PoolUser session ends when its token was rotated, or
        the user suspended or deleted; a changed role applies at once."""
        if not caller.is_pool_user:
            expired = caller.expires_at is not None and time.time() >= caller.expires_at
            return None if expired else caller
        route = self.mirror.route(caller.token_sha256)
        if (
            route is None
            or route.suspended
            or route.user != caller.name
            or route.namespace != caller.namespace
        ):
            return None
        return caller if route.role == caller.role else replace(caller, role=route.role)
