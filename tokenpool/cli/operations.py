"""Admin operations on the custom resources, through the Kubernetes API only.

Everything here is also doable with kubectl (docs/cli.md shows how): these functions only save
typing and wait for the operator where a person would otherwise poll. No state outside the API.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, KubeError, core_path, cr_path


class AdminError(RuntimeError):
    """An operation that cannot be done, with a message for the person at the terminal."""


@dataclass(frozen=True)
class Target:
    """Where a command acts: the cluster (through the project's client) and a namespace."""

    kube: KubeClient
    namespace: str


def explain(exc: KubeError, what: str) -> AdminError:
    if exc.status == 409:
        return AdminError(f"{what} already exists")
    if exc.status in (401, 403):
        return AdminError(f"not allowed to access {what}: check your RBAC permissions")
    if exc.status == 422:
        return AdminError(f"{what} was rejected by the API server: {exc.message or exc.reason}")
    return AdminError(f"{what}: API error {exc.status} {exc.reason}")


def _missing(what: str) -> AdminError:
    return AdminError(f"{what} not found (are the CRDs installed, and is this the right namespace?)")


async def _get(target: Target, plural: str, name: str) -> dict[str, Any]:
    what = f"{plural} {target.namespace}/{name}"
    try:
        obj = await target.kube.get(cr_path(target.namespace, plural, name))
    except KubeError as exc:
        raise explain(exc, what) from exc
    if obj is None:
        raise _missing(what)
    return obj


async def _create(target: Target, plural: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": contract.API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": target.namespace},
        "spec": spec,
    }
    what = f"{kind} {target.namespace}/{name}"
    try:
        obj = await target.kube.create(cr_path(target.namespace, plural), body)
    except KubeError as exc:
        raise explain(exc, what) from exc
    if obj is None:
        raise _missing(what)
    return obj


async def create_user(
    target: Target,
    name: str,
    email: str = "",
    role: str = "User",
    quota: int | None = None,
    display_name: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"role": role, "displayName": display_name or name}
    if email:
        spec["email"] = email
    if quota is not None:
        spec["tokenQuota"] = quota
    return await _create(target, contract.PLURAL_USER, contract.KIND_USER, name, spec)


def _secret_ref(user: dict[str, Any]) -> tuple[str, str]:
    """Where the user's personal token is: what the operator reports, else what it will use."""
    name = user["metadata"]["name"]
    status_name = (user.get("status") or {}).get("personalTokenSecretName")
    if status_name:
        return str(status_name), contract.PERSONAL_TOKEN_KEY
    ref = (user.get("spec") or {}).get("personalTokenSecretRef")
    if ref:
        return str(ref["name"]), str(ref.get("key") or contract.PERSONAL_TOKEN_KEY)
    return contract.personal_token_secret_name(name), contract.PERSONAL_TOKEN_KEY


async def _read_secret_key(target: Target, name: str, key: str) -> str | None:
    try:
        secret = await target.kube.get(core_path(target.namespace, "secrets", name))
    except KubeError as exc:
        raise explain(exc, f"Secret {target.namespace}/{name}") from exc
    raw = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None


async def personal_token(target: Target, name: str) -> str | None:
    """The user's current personal token, or None while the operator has not generated it."""
    secret, key = _secret_ref(await _get(target, contract.PLURAL_USER, name))
    return await _read_secret_key(target, secret, key)


async def wait_personal_token(target: Target, name: str, within_s: float, previous: str | None = None) -> str:
    """Poll until the user has a personal token (different from ``previous``, for rotation)."""
    deadline = time.monotonic() + within_s
    while True:
        token = await personal_token(target, name)
        if token and token != previous:
            return token
        if time.monotonic() > deadline:
            raise AdminError(
                f"the operator did not {'rotate' if previous else 'generate'} the personal token of {name!r} "
                f"within {within_s:g}s: is the operator running in namespace {target.namespace!r}?"
            )
        await asyncio.sleep(0.2)


async def rotate(target: Target, name: str) -> str | None:
    """Ask the operator for a new personal token; return the old one (to wait for a change).

    Only generated tokens rotate: a brought token (``personalTokenSecretRef``) is the admin's.
    """
    user = await _get(target, contract.PLURAL_USER, name)
    ref = (user.get("spec") or {}).get("personalTokenSecretRef")
    if ref:
        raise AdminError(
            f"{name!r} brings its own personal token (Secret {ref['name']!r}): write a new value there, "
            "or remove spec.personalTokenSecretRef to let the operator generate one"
        )
    old = await personal_token(target, name)
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"metadata": {"annotations": {contract.ANNOTATION_ROTATE_PERSONAL_TOKEN: value}}}
    try:
        patched = await target.kube.merge_patch(cr_path(target.namespace, contract.PLURAL_USER, name), patch)
    except KubeError as exc:
        raise explain(exc, f"PoolUser {target.namespace}/{name}") from exc
    if patched is None:
        raise _missing(f"PoolUser {target.namespace}/{name}")
    return old


async def allocate(
    target: Target,
    user: str,
    tokens: list[str] | None,
    selector: dict[str, str] | None,
    count: int | None,
    priority: int,
    name: str | None = None,
) -> dict[str, Any]:
    """Create a TokenAllocation for an existing user: explicit token names or selector + count."""
    if bool(tokens) == bool(selector):
        raise AdminError("give either --tokens or --selector (with --count), not both and not neither")
    if selector and not count:
        raise AdminError("--selector needs --count (how many matching tokens to allocate)")
    await _get(target, contract.PLURAL_USER, user)  # a clear error for a typo in the user name
    spec: dict[str, Any] = {"user": user, "priority": priority}
    if tokens:
        spec["tokens"] = tokens
    else:
        spec["selector"] = {"matchLabels": selector}
        spec["count"] = count
    return await _create(
        target, contract.PLURAL_ALLOCATION, contract.KIND_ALLOCATION, name or _alloc_name(user), spec
    )


@dataclass(frozen=True)
class Verdict:
    """The operator's word on an object: one condition of its status, and the status itself."""

    ready: bool
    reason: str
    message: str
    status: dict[str, Any]

    @property
    def tokens(self) -> tuple[str, ...]:
        """An allocation's granted tokens."""
        return tuple(self.status.get("tokens") or ())


async def wait_condition(
    target: Target, plural: str, name: str, ctype: str, within_s: float
) -> Verdict | None:
    """The condition ``ctype`` once the operator observed the object's current generation
    (None if it has not within ``within_s``)."""
    deadline = time.monotonic() + within_s
    while True:
        obj = await _get(target, plural, name)
        status = obj.get("status") or {}
        if status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1):
            for cond in status.get("conditions") or []:
                if cond.get("type") == ctype:
                    return Verdict(
                        ready=cond.get("status") == "True",
                        reason=str(cond.get("reason", "")),
                        message=str(cond.get("message", "")),
                        status=status,
                    )
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.2)


async def wait_allocation(target: Target, name: str, within_s: float) -> Verdict | None:
    """The operator's verdict on an allocation (None if it has not reconciled it in time)."""
    return await wait_condition(target, contract.PLURAL_ALLOCATION, name, "Ready", within_s)


def _alloc_name(user: str) -> str:
    return f"{user}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}"


async def request_check(target: Target, name: str) -> str:
    """Ask the operator to check an UpstreamToken now; returns the request's value."""
    await _get(target, contract.PLURAL_UPSTREAM, name)
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"metadata": {"annotations": {contract.ANNOTATION_CHECK_NOW: value}}}
    try:
        await target.kube.merge_patch(cr_path(target.namespace, contract.PLURAL_UPSTREAM, name), patch)
    except KubeError as exc:
        raise explain(exc, f"UpstreamToken {target.namespace}/{name}") from exc
    return value


async def wait_check(target: Target, name: str, request: str, within_s: float) -> dict[str, Any]:
    """The token's ``status.check`` once the operator handled ``request``."""
    deadline = time.monotonic() + within_s
    while True:
        token = await _get(target, contract.PLURAL_UPSTREAM, name)
        check = (token.get("status") or {}).get("check") or {}
        if check.get("request") == request:
            return dict(check)
        if time.monotonic() > deadline:
            raise AdminError(
                f"the operator did not check {name!r} within {within_s:g}s: "
                f"is the operator running in namespace {target.namespace!r}?"
            )
        await asyncio.sleep(0.2)
