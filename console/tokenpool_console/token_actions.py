"""Writes on UpstreamTokens: create with a credential (into a Secret, never shown again),
suspend/resume, check now, delete.

Every way of adding an account ends in :func:`create_account`: the plain one (an access token
pasted by the admin, :func:`create_token`) and the Augment sign-in
(:mod:`tokenpool_console.account_sign_in`). The Secret and the token are written by
:mod:`tokenpool.accounts.upstream_account`, through the writer of the person the console acts for.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tokenpool.accounts.upstream_account import CreateError, create_upstream_token
from tokenpool.contract import compiled as contract

from . import problems, writes
from .api_models import TokenCreate
from .backend import Backend
from .callers import Caller

TOKENS = contract.PLURAL_UPSTREAM
log = logging.getLogger("tokenpool.console.tokens")
MANAGED_BY_CONSOLE = "tokenpool-console"


async def check_create(b: Backend, caller: Caller, ns: str) -> None:
    """Adding an account needs both rights: the UpstreamToken and its credential Secret."""
    await b.access.check(caller, ns, "create", TOKENS)
    await b.access.check(caller, ns, "create", "secrets", group="")


async def create_account(
    b: Backend,
    caller: Caller,
    ns: str,
    name: str,
    spec: dict[str, Any],
    credential: str,
    labels: dict[str, str],
    reason: str = "TokenCreated",
    message: str = "UpstreamToken created",
) -> dict[str, Any]:
    """The credential Secret and the UpstreamToken (``spec`` without the Secret's reference),
    written as the caller; the answer folded into the mirror and recorded as an Event."""
    await check_create(b, caller, ns)
    try:
        created = await create_upstream_token(
            b.access.writer(caller), ns, name, spec, credential, labels, MANAGED_BY_CONSOLE
        )
    except CreateError as exc:
        raise problems.from_kube(exc.error, exc.what) from None
    if created.owner_error is not None:  # the token works; only the clean-up on delete is lost
        error = created.owner_error
        log.warning(
            "Secret %s/%s stays without owner (%s %s)", ns, created.secret_name, error.status, error.reason
        )
    await writes.created(b, caller, TOKENS, created.token, reason, message)
    return created.token


async def create_token(b: Backend, caller: Caller, ns: str, body: TokenCreate) -> dict[str, Any]:
    """An account with an access token the admin pasted."""
    spec: dict[str, Any] = {
        "provider": body.provider,
        "endpoint": body.endpoint,
        "maxConcurrency": body.max_concurrency,
        "minIntervalSeconds": body.min_interval_seconds,
        "maxAllocations": body.max_allocations,
    }
    if body.description:
        spec["description"] = body.description
    return await create_account(b, caller, ns, body.name, spec, body.credential.strip(), body.labels)


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
