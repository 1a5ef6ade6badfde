"""Writes on PoolUsers: create (personal token shown once), edit, suspend/resume, rotate, delete.

The personal token comes from the operator (it generates and rotates it): after a create or a
rotation the console waits for the Secret, reads it once with the caller's identity and hands it
back; it keeps no copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tokenpool.cli.operations import AdminError, Target, personal_token, wait_personal_token
from tokenpool.contract import compiled as contract

from . import problems, writes
from .api_models import UserCreate, UserEdit
from .backend import Backend
from .callers import Caller

USERS = contract.PLURAL_USER


def spec_of(body: UserCreate) -> dict[str, Any]:
    spec: dict[str, Any] = {"role": body.role, "displayName": body.display_name or body.name}
    if body.email:
        spec["email"] = body.email
    if body.token_quota is not None:
        spec["tokenQuota"] = body.token_quota
    if body.limits is not None:
        spec["limits"] = body.limits.model_dump(by_alias=True)
    return spec


async def read_token(b: Backend, caller: Caller, ns: str, name: str, previous: str | None = None) -> str:
    """Wait for the operator's personal token of ``name`` (a new one when ``previous`` is given)."""
    await b.access.check(caller, ns, "get", "secrets", contract.personal_token_secret_name(name), group="")
    target = Target(b.access.writer(caller), ns)
    try:
        return await wait_personal_token(target, name, b.settings.token_wait_seconds, previous)
    except AdminError as exc:
        raise problems.Problem(504, "OperatorTimeout", str(exc)) from exc


async def current_token(b: Backend, caller: Caller, ns: str, name: str) -> str | None:
    try:
        return await personal_token(Target(b.access.writer(caller), ns), name)
    except AdminError as exc:
        raise problems.Problem(502, "KubernetesError", str(exc)) from exc


async def create_user(b: Backend, caller: Caller, ns: str, body: UserCreate) -> tuple[dict[str, Any], str]:
    if body.token_quota is not None and body.token_quota > b.settings.max_quota:
        raise problems.invalid(f"tokenQuota may be at most {b.settings.max_quota} (the operator's maximum)")
    obj = await writes.create(b, caller, ns, USERS, body.name, {}, spec_of(body), "UserCreated")
    return obj, await read_token(b, caller, ns, body.name)


def edit_patch(body: UserEdit) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if body.display_name is not None:
        spec["displayName"] = body.display_name
    if body.email is not None:
        spec["email"] = body.email or None  # empty removes it
    if body.role is not None:
        spec["role"] = body.role
    if "token_quota" in body.model_fields_set:
        spec["tokenQuota"] = body.token_quota  # None removes it: the operator's default applies
    if body.limits is not None:
        spec["limits"] = body.limits.model_dump(by_alias=True)
    if not spec:
        raise problems.invalid("nothing to change")
    return {"spec": spec}


def _not_yourself(caller: Caller, ns: str, name: str, what: str) -> None:
    """A pool admin cannot lock themselves out (another admin, or kubectl, can)."""
    if caller.is_pool_user and caller.namespace == ns and caller.name == name:
        raise problems.invalid(f"you cannot {what} your own account")


async def edit_user(b: Backend, caller: Caller, ns: str, name: str, body: UserEdit) -> dict[str, Any]:
    if body.role == "User":
        _not_yourself(caller, ns, name, "take the Admin role from")
    if body.token_quota is not None and body.token_quota > b.settings.max_quota:
        raise problems.invalid(f"tokenQuota may be at most {b.settings.max_quota} (the operator's maximum)")
    return await writes.patch(b, caller, ns, USERS, name, edit_patch(body), "UserEdited", "spec edited")


async def set_suspended(b: Backend, caller: Caller, ns: str, name: str, suspended: bool) -> dict[str, Any]:
    if suspended:
        _not_yourself(caller, ns, name, "suspend")
    reason, message = ("UserSuspended", "suspended") if suspended else ("UserResumed", "resumed")
    return await writes.patch(b, caller, ns, USERS, name, {"spec": {"suspended": suspended}}, reason, message)


def rotation_patch() -> dict[str, Any]:
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"annotations": {contract.ANNOTATION_ROTATE_PERSONAL_TOKEN: value}}}


def check_rotatable(b: Backend, ns: str, name: str) -> None:
    if writes.row(b, ns, USERS, name).brings_token:
        raise problems.invalid(
            f"{name!r} brings its own personal token (spec.personalTokenSecretRef): "
            "change that Secret instead"
        )


async def rotate(b: Backend, caller: Caller, ns: str, name: str) -> str:
    """Ask the operator for a new personal token and return it (shown once)."""
    await b.access.check(caller, ns, "patch", USERS, name)
    check_rotatable(b, ns, name)
    old = await current_token(b, caller, ns, name)
    await writes.patch(
        b,
        caller,
        ns,
        USERS,
        name,
        rotation_patch(),
        "TokenRotationRequested",
        "personal token rotation asked",
        False,
    )
    return await read_token(b, caller, ns, name, previous=old)


async def delete_user(b: Backend, caller: Caller, ns: str, name: str) -> None:
    _not_yourself(caller, ns, name, "delete")
    await writes.delete(b, caller, ns, USERS, name, "UserDeleted")
