"""Pure reconcile of a PoolUser: personal-token decisions and the compiled route.

The personal token is generated once (``secrets.token_hex(32)``) and then only ever read back
from its Secret: re-reconciles and operator restarts derive it from there, never regenerate it.
Rotation is explicit: setting the annotation ``tokenpool.io/rotate-personal-token`` to a value the
Secret has not recorded yet generates a new token and records that value.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from tokenpool.contract import compiled as c
from tokenpool_operator.conditions import Cond

GENERATED = re.compile(r"^[0-9a-f]{64}$")
# A brought-your-own token (e.g. migrated from the old system): any bearer-safe string.
BYO = re.compile(r"^[\x21-\x7e]{16,512}$")

Action = Literal["keep", "generate", "rotate", "byo", "invalid"]


@dataclass(frozen=True)
class TokenPlan:
    action: Action
    token: str | None
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.token is not None


def decode(secret: dict[str, Any] | None, key: str) -> str | None:
    raw = ((secret or {}).get("data") or {}).get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def rotation_request(meta: dict[str, Any]) -> str:
    return (meta.get("annotations") or {}).get(c.ANNOTATION_ROTATE_PERSONAL_TOKEN, "")


def recorded_rotation(secret: dict[str, Any] | None) -> str:
    return ((secret or {}).get("metadata", {}).get("annotations") or {}).get(c.ANNOTATION_ROTATED_FOR, "")


def plan_generated(secret: dict[str, Any] | None, rotate: str) -> TokenPlan:
    """What to do with the generated personal token, given its current Secret (or None)."""
    if secret is None:
        return TokenPlan("generate", secrets.token_hex(32), "TokenGenerated", "personal token generated")
    current = decode(secret, c.PERSONAL_TOKEN_KEY)
    if rotate and rotate != recorded_rotation(secret):
        return TokenPlan("rotate", secrets.token_hex(32), "TokenRotated", "personal token rotated on request")
    if current is None or not GENERATED.match(current):
        return TokenPlan(
            "invalid",
            None,
            "PersonalTokenInvalid",
            f"Secret {secret['metadata']['name']!r} key 'token' is not 64 lowercase hex characters; "
            f"set annotation {c.ANNOTATION_ROTATE_PERSONAL_TOKEN} to a new value to regenerate it",
        )
    return TokenPlan("keep", current, "PersonalTokenReady", "personal token present")


def plan_byo(ref: dict[str, Any], secret: dict[str, Any] | None) -> TokenPlan:
    name, key = ref["name"], ref.get("key") or c.PERSONAL_TOKEN_KEY
    if secret is None:
        return TokenPlan("invalid", None, "PersonalTokenSecretNotFound", f"Secret {name!r} does not exist")
    value = decode(secret, key)
    if value is None:
        return TokenPlan("invalid", None, "PersonalTokenKeyNotFound", f"Secret {name!r} has no key {key!r}")
    if not BYO.match(value):
        return TokenPlan(
            "invalid",
            None,
            "PersonalTokenInvalid",
            f"key {key!r} of Secret {name!r} must be 16-512 printable characters without spaces",
        )
    return TokenPlan("byo", value, "PersonalTokenReady", f"personal token read from Secret {name!r}")


def effective_quota(spec: dict[str, Any], default: int, maximum: int) -> tuple[int, Cond]:
    """The quota the operator enforces and a condition saying whether the spec was within bounds."""
    asked = spec.get("tokenQuota")
    if asked is None:
        return default, Cond("QuotaWithinMaximum", True, "DefaultQuota", f"operator default quota {default}")
    if asked > maximum:
        return maximum, Cond(
            "QuotaWithinMaximum",
            False,
            "QuotaAboveMaximum",
            f"tokenQuota {asked} exceeds the operator maximum {maximum}; {maximum} is enforced",
        )
    return asked, Cond("QuotaWithinMaximum", True, "QuotaAccepted", f"tokenQuota {asked}")


def compile_route(
    body: dict[str, Any], token: str, quota: int, upstreams: tuple[c.AllocatedUpstream, ...]
) -> c.UserRoute:
    meta, spec = body["metadata"], body.get("spec") or {}
    return c.UserRoute(
        user=meta["name"],
        uid=meta.get("uid", ""),
        tokenSha256=c.hash_personal_token(token),
        role=spec.get("role") or "User",
        suspended=bool(spec.get("suspended")),
        displayName=spec.get("displayName") or "",
        email=spec.get("email") or "",
        tokenQuota=quota,
        createdAt=meta.get("creationTimestamp") or "",
        limits=c.Limits.model_validate(spec.get("limits") or {}),
        upstreams=upstreams,
    )
