"""Adding an Augment account by signing in with it, as an admin action (docs/console.md,
"Signing in an Augment account"): the console's side of :mod:`tokenpool.accounts.augment_oauth`.

* :func:`start` (same rights as adding a token: create UpstreamTokens and Secrets) keeps a new
  sign-in in :class:`~tokenpool_console.sign_in_store.SignIns` and answers its id and URL.
* :func:`finish` refuses what it can before the sign-in is used (rights, the body, a taken name,
  an unreadable answer: the admin may correct and send again), then takes the sign-in (single
  use, the same session and namespace only), checks the answer (``state``, expiry, an allowed
  tenant host), exchanges the code and creates the Secret and the UpstreamToken through
  :func:`~tokenpool_console.token_actions.create_account`, as the person.

The access token exists only between the exchange and the Secret's creation: it is in no
answer, log line, Event or page.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tokenpool.accounts import augment_oauth as oauth

from . import problems, token_actions
from .api_models import SignInFinish
from .backend import Backend
from .guards import Authed
from .sign_in_store import owner_key

log = logging.getLogger("tokenpool.console.sign_in")
EXCHANGE_TIMEOUT_S = 30.0


def owner_of(authed: Authed) -> str:
    """A browser's sign-in belongs to its session; an API script's to its identity."""
    if authed.session is not None:
        return owner_key("session", authed.session.sid)
    c = authed.caller
    return owner_key("bearer", f"{c.kind}\n{c.namespace}\n{c.name}\n{c.token_sha256}")


async def start(b: Backend, authed: Authed, ns: str) -> dict[str, Any]:
    await token_actions.check_create(b, authed.caller, ns)
    sign_in_id, pending = b.sign_ins.start(owner_of(authed), ns)
    return {
        "loginId": sign_in_id,
        "url": pending.url,
        "expiresInSeconds": round(pending.expires_at - time.monotonic()),
    }


def _refused(exc: oauth.LoginError) -> problems.Problem:
    if isinstance(exc, oauth.TenantUnreachable):
        return problems.Problem(502, "TenantUnreachable", str(exc))
    return problems.Problem(422, "SignInRefused", str(exc))


async def finish(b: Backend, authed: Authed, ns: str, body: SignInFinish) -> dict[str, Any]:
    caller = authed.caller
    await token_actions.check_create(b, caller, ns)
    if body.name in b.mirror.pool(ns).tokens:
        raise problems.Problem(
            409, "Conflict", f"UpstreamToken {body.name!r} already exists: choose another name"
        )
    try:
        answer = oauth.parse_answer(body.answer_text)
    except oauth.LoginError as exc:
        raise problems.invalid(str(exc)) from None
    pending = b.sign_ins.take(body.login_id, owner_of(authed), ns)
    if pending is None:
        raise problems.Problem(
            404,
            "SignInNotFound",
            "no sign-in with this id is waiting for this session in namespace "
            f"{ns!r} (already used, expired long ago, or started elsewhere): start a new one",
        )
    hosts = tuple(h.lower() for h in b.settings.augment_tenant_hosts)
    host = urlsplit(answer.tenant_url).hostname or ""
    try:
        oauth.check(pending, answer, hosts)
        timeout = aiohttp.ClientTimeout(total=EXCHANGE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            access_token = await oauth.exchange(session, pending, answer)
    except oauth.LoginError as exc:
        log.info("sign-in of %s/%s by %s refused: %s", ns, body.name, caller.describe(), exc)
        raise _refused(exc) from None
    spec: dict[str, Any] = {
        "provider": "Augment",
        "endpoint": answer.tenant_url,
        "maxConcurrency": body.max_concurrency,
        "minIntervalSeconds": body.min_interval_seconds,
        "maxAllocations": body.max_allocations,
    }
    if body.description:
        spec["description"] = body.description
    created = await token_actions.create_account(
        b,
        caller,
        ns,
        body.name,
        spec,
        access_token,
        body.labels,
        "TokenSignedIn",
        "UpstreamToken added by an Augment sign-in",
    )
    log.info("account %s/%s signed in by %s (tenant host %s)", ns, body.name, caller.describe(), host)
    return created
