"""Joining the pool (docs/console.md): a visitor asks for access, an admin approves or rejects.

* A request creates a PoolUser, suspended and labelled ``tokenpool.io/access-request=pending``,
  with a generated name (from the e-mail's local part plus a random suffix: no collisions, so the
  answer never says whether a name or address is taken) and the sha256 of a random claim code.
  The visitor keeps the claim code (the page keeps it in an HttpOnly cookie).
* Approving (console, or kubectl: remove the pending label and unsuspend) makes it a user;
  rejecting deletes it.
* With the claim code the visitor sees the personal token once: the claim annotation is removed
  with a resourceVersion precondition before the token is shown, so two tabs cannot both see it.
* Invitation codes (created by admins, shown once, stored as sha256 in ConfigMap
  ``tokenpool-console-invitations`` with an expiry and a number of uses) are required in
  ``invitation`` mode and recorded on the request in ``open`` mode.

These are the console's own writes (its ServiceAccount): a visitor has no identity to impersonate.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tokenpool.cli.operations import AdminError, Target, personal_token
from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeError, core_path, cr_path

from . import problems, writes
from .api_models import ClaimIn, InvitationCreate, JoinIn
from .backend import Backend
from .callers import Caller
from .projections import ACCESS_APPROVED, ACCESS_PENDING, LABEL_ACCESS_REQUEST

INVITATIONS = "tokenpool-console-invitations"
ANNOTATION_CLAIM = "tokenpool.io/access-claim-sha256"
ANNOTATION_REQUESTED_AT = "tokenpool.io/access-requested-at"
ANNOTATION_INVITED_BY = "tokenpool.io/invited-by"
USERS = contract.PLURAL_USER


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_name(body: JoinIn) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", body.email.split("@")[0].lower()).strip("-")[:40].strip("-")
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return f"{base or 'user'}-{''.join(secrets.choice(alphabet) for _ in range(6))}"


# --- invitations ---------------------------------------------------------------------------


async def _invitations(b: Backend, ns: str) -> dict[str, Any] | None:
    try:
        return await b.kube.get(core_path(ns, "configmaps", INVITATIONS))
    except KubeError as exc:
        raise problems.from_kube(exc, "the invitations") from exc


def _entries(cm: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    out = {}
    for key, raw in ((cm or {}).get("data") or {}).items():
        try:
            out[key] = dict(orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue
    return out


async def _write_invitations(
    b: Backend, ns: str, cm: dict[str, Any] | None, entries: dict[str, dict[str, Any]]
) -> None:
    data = {k: orjson.dumps(v).decode() for k, v in entries.items()}
    try:
        if cm is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": INVITATIONS, "namespace": ns},
                "data": data,
            }
            await b.kube.create(core_path(ns, "configmaps"), body)
        else:
            await b.kube.replace(core_path(ns, "configmaps", INVITATIONS), {**cm, "data": data})
    except KubeError as exc:
        raise problems.from_kube(exc, "the invitations") from exc


def _live(entry: dict[str, Any], now: datetime) -> bool:
    return int(entry.get("usesLeft") or 0) > 0 and str(entry.get("expiresAt") or "") > _stamp(now)


async def list_invitations(b: Backend, caller: Caller, ns: str) -> list[dict[str, Any]]:
    await b.access.check(caller, ns, "create", USERS)
    now = _now()
    rows = [
        {"id": key[:12], **entry}
        for key, entry in _entries(await _invitations(b, ns)).items()
        if _live(entry, now)
    ]
    return sorted(rows, key=lambda r: str(r.get("createdAt")), reverse=True)


async def create_invitation(b: Backend, caller: Caller, ns: str, body: InvitationCreate) -> str:
    """A new invitation code (shown once; only its sha256 is stored)."""
    await b.access.check(caller, ns, "create", USERS)
    code = secrets.token_urlsafe(16)
    now = _now()
    for _ in range(3):
        cm = await _invitations(b, ns)
        entries = {k: v for k, v in _entries(cm).items() if _live(v, now)}
        entries[_sha(code)] = {
            "createdBy": caller.describe(),
            "createdAt": _stamp(now),
            "expiresAt": _stamp(now + timedelta(days=body.valid_days)),
            "usesLeft": body.uses,
            "note": body.note,
        }
        try:
            await _write_invitations(b, ns, cm, entries)
            return code
        except problems.Problem as exc:
            if exc.status != 409:
                raise
    raise problems.Problem(409, "Conflict", "the invitations changed meanwhile: try again")


async def revoke_invitation(b: Backend, caller: Caller, ns: str, invitation_id: str) -> None:
    await b.access.check(caller, ns, "create", USERS)
    cm = await _invitations(b, ns)
    entries = _entries(cm)
    kept = {k: v for k, v in entries.items() if not k.startswith(invitation_id)}
    if len(kept) == len(entries) or len(invitation_id) < 8:
        raise problems.not_found(f"invitation {invitation_id!r}")
    await _write_invitations(b, ns, cm, kept)


async def _use_invitation(b: Backend, ns: str, code: str) -> str | None:
    """Spend one use of ``code``: who created it, or None when it is not valid."""
    key, now = _sha(code), _now()
    for _ in range(3):
        cm = await _invitations(b, ns)
        entries = _entries(cm)
        entry = entries.get(key)
        if entry is None or not _live(entry, now):
            return None
        entry["usesLeft"] = int(entry["usesLeft"]) - 1
        try:
            await _write_invitations(b, ns, cm, entries)
            return str(entry.get("createdBy") or "")
        except problems.Problem as exc:
            if exc.status != 409:
                raise
    return None


# --- requests --------------------------------------------------------------------------------


async def request_access(b: Backend, ns: str, body: JoinIn) -> tuple[str, str]:
    """Create the pending PoolUser; returns (request name, claim code)."""
    mode = b.settings.join
    if mode == "off":
        raise problems.not_found("joining")
    invited_by = await _use_invitation(b, ns, body.invitation) if body.invitation else None
    if mode == "invitation" and invited_by is None:
        raise problems.invalid("a valid invitation code is needed to join this pool")
    claim = secrets.token_urlsafe(24)
    name = request_name(body)
    annotations = {ANNOTATION_CLAIM: _sha(claim), ANNOTATION_REQUESTED_AT: _stamp(_now())}
    if invited_by:
        annotations[ANNOTATION_INVITED_BY] = invited_by
    doc = {
        "apiVersion": contract.API_VERSION,
        "kind": contract.KIND_USER,
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {LABEL_ACCESS_REQUEST: ACCESS_PENDING},
            "annotations": annotations,
        },
        "spec": {"displayName": body.name, "email": body.email, "role": "User", "suspended": True},
    }
    try:
        obj = await b.kube.create(cr_path(ns, USERS), doc)
    except KubeError as exc:
        raise problems.from_kube(exc, "the request") from exc
    assert obj is not None
    b.mirror.observe("users", obj)
    return name, claim


async def claim_token(b: Backend, ns: str, body: ClaimIn) -> tuple[str, str | None]:
    """("pending", None), ("approved", personal token) once, or ("unknown", None) for anything
    else (no such request, wrong claim code, rejected, already shown): indistinguishable."""
    try:
        obj = await b.kube.get(cr_path(ns, USERS, body.request))
    except KubeError as exc:
        raise problems.from_kube(exc, "the request") from exc
    meta = (obj or {}).get("metadata") or {}
    stored = (meta.get("annotations") or {}).get(ANNOTATION_CLAIM, "")
    if obj is None or not stored or not secrets.compare_digest(stored, _sha(body.claim)):
        return "unknown", None
    if (meta.get("labels") or {}).get(LABEL_ACCESS_REQUEST) == ACCESS_PENDING or (obj.get("spec") or {}).get(
        "suspended"
    ):
        return "pending", None
    patch = {
        "metadata": {"resourceVersion": meta["resourceVersion"], "annotations": {ANNOTATION_CLAIM: None}}
    }
    try:
        await b.kube.merge_patch(cr_path(ns, USERS, body.request), patch)
        token = await personal_token(Target(b.kube, ns), body.request)
    except (KubeError, AdminError):
        return "unknown", None  # someone else claimed it first (409), or it went away
    return ("approved", token) if token else ("unknown", None)


async def approve(b: Backend, caller: Caller, ns: str, name: str) -> dict[str, Any]:
    if not writes.row(b, ns, USERS, name).pending:
        raise problems.invalid(f"{name!r} is not a pending access request")
    patch = {"metadata": {"labels": {LABEL_ACCESS_REQUEST: ACCESS_APPROVED}}, "spec": {"suspended": False}}
    return await writes.patch(b, caller, ns, USERS, name, patch, "AccessApproved", "access request approved")


async def reject(b: Backend, caller: Caller, ns: str, name: str) -> None:
    if not writes.row(b, ns, USERS, name).pending:
        raise problems.invalid(f"{name!r} is not a pending access request")
    await writes.delete(b, caller, ns, USERS, name, "AccessRejected")
