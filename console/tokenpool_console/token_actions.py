"""Writes on UpstreamTokens: create with a credential (into a Secret, never shown again),
suspend/resume, check now, delete.

Adding an upstream account is one of several ways of getting a credential into a Secret; this
module holds the plain one (an access token pasted by the admin). Another way (e.g. an OAuth
sign-in that yields the access token) ends in :func:`create_token` too.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeError, core_path

from . import problems, writes
from .api_models import TokenCreate
from .backend import Backend
from .callers import Caller

TOKENS = contract.PLURAL_UPSTREAM
log = logging.getLogger("tokenpool.console.tokens")
MANAGED_BY_CONSOLE = "tokenpool-console"


def credential_secret_name(token: str) -> str:
    return f"{token}-credential"


async def create_token(b: Backend, caller: Caller, ns: str, body: TokenCreate) -> dict[str, Any]:
    """The credential Secret first (so the operator never sees a token without its Secret), then
    the UpstreamToken, then the Secret made owned by the token (deleted with it)."""
    await b.access.check(caller, ns, "create", TOKENS)
    secret_name = credential_secret_name(body.name)
    await b.access.check(caller, ns, "create", "secrets", group="")
    writer = b.access.writer(caller)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": ns,
            "labels": {contract.LABEL_MANAGED_BY: MANAGED_BY_CONSOLE, contract.LABEL_OWNER: body.name},
        },
        "stringData": {contract.DEFAULT_CREDENTIAL_KEY: body.credential.strip()},
    }
    try:
        await writer.create(core_path(ns, "secrets"), secret)
    except KubeError as exc:
        raise problems.from_kube(exc, f"Secret {secret_name!r}") from exc
    spec = {
        "provider": body.provider,
        "endpoint": body.endpoint,
        "credentialSecretRef": {"name": secret_name, "key": contract.DEFAULT_CREDENTIAL_KEY},
        "maxConcurrency": body.max_concurrency,
        "minIntervalSeconds": body.min_interval_seconds,
        "maxAllocations": body.max_allocations,
    }
    if body.description:
        spec["description"] = body.description
    metadata = {"labels": body.labels} if body.labels else {}
    try:
        obj = await writes.create(b, caller, ns, TOKENS, body.name, metadata, spec, "TokenCreated")
    except problems.Problem:
        await _remove_secret(writer, ns, secret_name)
        raise
    owner = {
        "apiVersion": contract.API_VERSION,
        "kind": contract.KIND_UPSTREAM,
        "name": body.name,
        "uid": obj["metadata"]["uid"],
    }
    try:
        await writer.merge_patch(
            core_path(ns, "secrets", secret_name), {"metadata": {"ownerReferences": [owner]}}
        )
    except KubeError as exc:  # the token works; only the clean-up on delete is lost
        log.warning("Secret %s/%s stays without owner (%s %s)", ns, secret_name, exc.status, exc.reason)
    return obj


async def _remove_secret(writer: Any, ns: str, name: str) -> None:
    # Best effort: the person may be allowed to create Secrets but not to delete them.
    with contextlib.suppress(KubeError):
        await writer.delete(core_path(ns, "secrets", name))


async def set_suspended(b: Backend, caller: Caller, ns: str, name: str, suspended: bool) -> dict[str, Any]:
    reason = "TokenSuspended" if suspended else "TokenResumed"
    message = "suspended" if suspended else "resumed"
    return await writes.patch(
        b, caller, ns, TOKENS, name, {"spec": {"suspended": suspended}}, reason, message
    )


async def check_now(b: Backend, caller: Caller, ns: str, name: str) -> dict[str, Any]:
    """Ask for a health check of the token at once (the annotation the proxy's probes watch)."""
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"metadata": {"annotations": {contract.ANNOTATION_CHECK_NOW: value}}}
    return await writes.patch(
        b, caller, ns, TOKENS, name, patch, "CheckRequested", "health check asked", False
    )


async def delete_token(b: Backend, caller: Caller, ns: str, name: str) -> None:
    await writes.delete(b, caller, ns, TOKENS, name, "TokenDeleted")
