"""Logging in and out, ``/api/me`` (self-service) and ``/api/join`` (asking for access)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from . import joining, problems, self_service
from .api_models import ClaimIn, JoinIn, LoginIn
from .backend import Backend
from .callers import Caller
from .guards import BackendDep, CurrentCaller, client_address, limited
from .present import days_json, user_json
from .tallies import utc_today

auth = APIRouter(prefix="/api/auth", tags=["login"])
me = APIRouter(prefix="/api/me", tags=["self-service"])
join = APIRouter(prefix="/api/join", tags=["joining"])


def caller_json(caller: Caller, namespace: str) -> dict[str, Any]:
    return {
        "kind": caller.kind,
        "name": caller.name,
        "namespace": namespace,
        "role": caller.role or None,
        "groups": list(caller.groups),
        "admin": caller.is_pool_admin or not caller.is_pool_user,
    }


async def log_in(
    b: Backend, request: Request, response: Response, token: str, namespace: str | None
) -> tuple[Caller, str, str]:
    """Authenticate, start a new session (dropping any session the browser had) and set its
    cookie; returns the caller, namespace and the session's CSRF token."""
    limited(b, request)
    caller = await b.auth.authenticate(token)
    if caller is None:
        b.login_throttle.hit(client_address(request))
        raise problems.unauthenticated("this token was not accepted")
    ns = caller.namespace if caller.is_pool_user else (namespace or b.settings.default_namespace)
    if ns not in b.settings.namespaces:
        raise problems.not_found(f"namespace {ns!r}")
    b.sessions.drop(request.cookies.get(b.sessions.cookie))
    session = b.sessions.create(caller, ns)
    response.set_cookie(b.sessions.cookie, session.sid, **b.sessions.cookie_args())  # type: ignore[arg-type]
    return caller, ns, session.csrf


@auth.post("/login")
async def login(b: BackendDep, request: Request, response: Response, body: LoginIn) -> dict[str, Any]:
    """Exchange a personal token or a Kubernetes bearer token for a session cookie; the answer
    carries the CSRF token every write with that cookie must send as ``X-CSRF-Token``."""
    caller, ns, csrf = await log_in(b, request, response, body.token, body.namespace)
    return {"caller": caller_json(caller, ns), "csrfToken": csrf}


@auth.post("/logout", status_code=204)
async def logout(b: BackendDep, authed: CurrentCaller, response: Response) -> None:
    if authed.session is not None:
        b.sessions.drop(authed.session.sid)
    response.delete_cookie(
        b.sessions.cookie, path="/", secure=b.sessions.secure, httponly=True, samesite="strict"
    )


@auth.get("/whoami")
async def whoami(b: BackendDep, authed: CurrentCaller) -> dict[str, Any]:
    ns = (
        authed.session.namespace
        if authed.session
        else (authed.caller.namespace or b.settings.default_namespace)
    )
    return caller_json(authed.caller, ns)


@me.get("")
async def my_account(b: BackendDep, authed: CurrentCaller) -> dict[str, Any]:
    """Your usage (30 days), and the upstream tokens you hold with their health and rest times."""
    today = utc_today()
    mine = self_service.account(b, authed.caller, today)
    return {
        "user": user_json(mine.user, today),
        "daily": days_json(mine.summary["days"]),
        "tokens": [
            {
                "name": t.name,
                "priority": t.priority,
                "state": t.state,
                "reason": t.reason or None,
                "restsUntil": t.rests_until or None,
                "myRequestsToday": t.mine_today.requests,
            }
            for t in mine.tokens
        ],
    }


@me.post("/rotate")
async def rotate_mine(b: BackendDep, authed: CurrentCaller) -> dict[str, str]:
    """A new personal token, shown this once; the old one stops working (this session goes on)."""
    token, caller = await self_service.rotate_own(b, authed.caller)
    if authed.session is not None:
        authed.session.caller = caller
    return {"personalToken": token}


def _join_allowed(b: Backend, request: Request) -> str:
    if b.settings.join == "off":
        raise problems.not_found("joining")
    address = client_address(request)
    wait = b.join_throttle.retry_after(address)
    if wait:
        raise problems.Problem(
            429, "TooManyRequests", f"too many requests: try again in {wait} s", retryAfter=wait
        )
    b.join_throttle.hit(address)
    return b.settings.default_namespace


@join.post("", status_code=202)
async def request_access(b: BackendDep, request: Request, body: JoinIn) -> dict[str, str]:
    """Ask for access. Keep ``claim``: with it, ``/api/join/claim`` shows your personal token
    once an admin approved the request."""
    ns = _join_allowed(b, request)
    name, claim = await joining.request_access(b, ns, body)
    return {"request": name, "claim": claim, "status": "pending"}


@join.post("/claim")
async def claim(b: BackendDep, request: Request, body: ClaimIn) -> dict[str, Any]:
    """``pending``, ``approved`` with the personal token (once), or ``unknown``. Unknown claims
    count against the client's login-failure limit."""
    if b.settings.join == "off":
        raise problems.not_found("joining")
    limited(b, request)
    state, token = await joining.claim_token(b, b.settings.default_namespace, body)
    if state == "unknown":
        b.login_throttle.hit(client_address(request))
    return {"status": state, "personalToken": token}
