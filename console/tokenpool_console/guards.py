"""FastAPI dependencies: who is calling (session cookie or bearer token), CSRF on writes, and the
namespace a request is about.

* ``Authorization: Bearer <token>`` (scripts): the token is authenticated on every call (cheap:
  personal tokens are an in-memory lookup, Kubernetes tokens' reviews are cached); no cookie, so
  no CSRF check. Failures count against the login limit of the client address.
* The session cookie (browsers): every unsafe method needs the session's CSRF token and, when
  the browser sends an Origin, the console's own origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Query, Request

from . import problems
from .backend import Backend
from .callers import Caller
from .login_sessions import Session, same

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def backend(request: Request) -> Backend:
    b: Backend = request.app.state.backend
    return b


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limited(b: Backend, request: Request) -> None:
    wait = b.login_throttle.retry_after(client_address(request))
    if wait:
        raise problems.Problem(
            429, "TooManyAttempts", f"too many failed logins: try again in {wait} s", retryAfter=wait
        )


def same_origin(request: Request) -> bool:
    """An Origin header, when present, must be this console's (scheme and host as requested)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme in (request.url.scheme, "https")


async def form_fields(request: Request) -> dict[str, str]:
    """The urlencoded form of a request (the pages' forms; no multipart), last value wins."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    body = (await request.body())[: 256 * 1024]
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


@dataclass
class Authed:
    caller: Caller
    session: Session | None  # None: bearer-authenticated


async def authenticate(request: Request) -> Authed:
    b = backend(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise problems.unauthenticated("use Authorization: Bearer <token>")
        limited(b, request)
        caller = await b.auth.authenticate(token)
        if caller is None:
            b.login_throttle.hit(client_address(request))
            raise problems.unauthenticated("the token was not accepted")
        return Authed(caller, None)
    session = b.sessions.get(request.cookies.get(b.sessions.cookie))
    if session is None:
        raise problems.unauthenticated()
    current = b.auth.current(session.caller)
    if current is None:
        b.sessions.drop(session.sid)
        raise problems.unauthenticated(
            "your session ended (token rotated, or account suspended): log in again"
        )
    session.caller = current
    if request.method in UNSAFE:
        if not same_origin(request):
            raise problems.forbidden("cross-site request refused")
        sent = request.headers.get(CSRF_HEADER) or (await form_fields(request)).get(CSRF_FIELD)
        if not same(sent, session.csrf):
            raise problems.forbidden("missing or wrong CSRF token: reload the page")
    return Authed(caller=current, session=session)


CurrentCaller = Annotated[Authed, Depends(authenticate)]


def namespace_of(
    authed: CurrentCaller,
    request: Request,
    namespace: Annotated[
        str | None, Query(description="Namespace (default: yours / the console's first)")
    ] = None,
) -> str:
    if namespace:
        return namespace
    if authed.caller.is_pool_user:
        return authed.caller.namespace
    if authed.session is not None:
        return authed.session.namespace
    return backend(request).settings.default_namespace


Namespace = Annotated[str, Depends(namespace_of)]
BackendDep = Annotated[Backend, Depends(backend)]
