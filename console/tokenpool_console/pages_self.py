"""Pages anyone reaches: log in and out, language, namespace, the self-service page, joining."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from . import forms, joining, problems, self_service
from .api_models import ClaimIn, JoinIn
from .api_self import log_in
from .callers import Caller
from .guards import Authed, BackendDep, authenticate, client_address, form_fields, limited, same_origin
from .login_sessions import same
from .page_kit import LANG_COOKIE, base_of, local_path, redirect, render
from .tallies import utc_today

router = APIRouter(include_in_schema=False)
JOIN_COOKIE = "tokenpool-join"


async def page_caller(request: Request, authed: Annotated[Authed, Depends(authenticate)]) -> Authed:
    request.state.session = authed.session
    return authed


PageCaller = Annotated[Authed, Depends(page_caller)]


def home(caller: Caller) -> str:
    return "/overview" if caller.is_pool_admin or not caller.is_pool_user else "/me"


def _pre_csrf(request: Request, b: BackendDep) -> str:
    return request.cookies.get(b.sessions.pre_cookie) or secrets.token_urlsafe(24)


def _with_pre_csrf(response: Response, b: BackendDep, token: str) -> Response:
    response.set_cookie(b.sessions.pre_cookie, token, **b.sessions.cookie_args(3600))  # type: ignore[arg-type]
    return response


async def _checked_form(request: Request, b: BackendDep) -> dict[str, str]:
    """A form posted before login: same origin and the double-submit token."""
    form = await form_fields(request)
    if not same_origin(request) or not same(form.get("pre_csrf"), request.cookies.get(b.sessions.pre_cookie)):
        raise problems.forbidden("the form expired or came from another site: reload the page")
    return form


@router.get("/")
async def index(request: Request, b: BackendDep) -> Response:
    session = b.sessions.get(request.cookies.get(b.sessions.cookie))
    caller = b.auth.current(session.caller) if session else None
    if caller is None:
        return redirect(request, "/login")
    return redirect(request, home(caller))


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, b: BackendDep, next: str = "/") -> Response:
    token = _pre_csrf(request, b)
    return _with_pre_csrf(
        render(request, "login.html", pre_csrf=token, next=local_path(next), error=""), b, token
    )


@router.post("/login")
async def login_submit(request: Request, b: BackendDep) -> Response:
    form = await _checked_form(request, b)
    target = local_path(form.get("next"))
    response = redirect(request, target)
    try:
        caller, _, _ = await log_in(b, request, response, form.get("token", ""), form.get("namespace"))
    except problems.Problem as exc:
        token = _pre_csrf(request, b)
        page = render(request, "login.html", exc.status, pre_csrf=token, next=target, error=exc.message)
        return _with_pre_csrf(page, b, token)
    if target == "/":
        response.headers["location"] = base_of(request) + home(caller)
    return response


@router.post("/logout")
async def logout(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    if authed.session is not None:
        b.sessions.drop(authed.session.sid)
    response = redirect(request, "/login")
    response.delete_cookie(
        b.sessions.cookie, path="/", secure=b.sessions.secure, httponly=True, samesite="strict"
    )
    return response


@router.get("/lang/{lang}")
async def choose_language(request: Request, lang: str, next: str = "/") -> Response:
    response = redirect(request, local_path(next))
    if lang in ("en", "zh"):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax", httponly=True)
    return response


@router.post("/namespace")
async def choose_namespace(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    namespace = form.get("namespace", "")
    if authed.session is None or authed.caller.is_pool_user or namespace not in b.settings.namespaces:
        raise problems.invalid("no such namespace here")
    authed.session.namespace = namespace
    return redirect(request, local_path(form.get("next"), "/overview"))


@router.get("/me", response_class=HTMLResponse)
async def me_page(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    return render(request, "me.html", mine=self_service.account(b, authed.caller, utc_today()))


@router.post("/me/rotate", response_class=HTMLResponse)
async def me_rotate(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    token, caller = await self_service.rotate_own(b, authed.caller)
    if authed.session is not None:
        authed.session.caller = caller
    heading = "Your new personal token (the old one no longer works):"
    return render(request, "_token_once_page.html", token=token, heading=heading)


@router.get("/join", response_class=HTMLResponse)
async def join_page(request: Request, b: BackendDep) -> Response:
    if b.settings.join == "off":
        raise problems.not_found("joining")
    token = _pre_csrf(request, b)
    return _with_pre_csrf(render(request, "join.html", pre_csrf=token, error=""), b, token)


@router.post("/join")
async def join_submit(request: Request, b: BackendDep) -> Response:
    if b.settings.join == "off":
        raise problems.not_found("joining")
    form = await _checked_form(request, b)
    try:
        body = forms.model(
            JoinIn,
            {
                "name": form.get("name", ""),
                "email": form.get("email", ""),
                "invitation": form.get("invitation", ""),
            },
        )
        address = client_address(request)
        wait = b.join_throttle.retry_after(address)
        if wait:
            raise problems.Problem(429, "TooManyRequests", f"too many requests: try again in {wait} s")
        b.join_throttle.hit(address)
        name, claim = await joining.request_access(b, b.settings.default_namespace, body)
    except problems.Problem as exc:
        token = _pre_csrf(request, b)
        return _with_pre_csrf(
            render(request, "join.html", exc.status, pre_csrf=token, error=exc.message), b, token
        )
    response = redirect(request, "/join/status")
    response.set_cookie(JOIN_COOKIE, f"{name}:{claim}", **b.sessions.cookie_args(30 * 86400))  # type: ignore[arg-type]
    return response


async def _join_status(request: Request, b: BackendDep) -> Response:
    if b.settings.join == "off":
        raise problems.not_found("joining")
    name, _, claim = request.cookies.get(JOIN_COOKIE, "").partition(":")
    status, token = "unknown", None
    if name and claim:
        limited(b, request)
        status, token = await joining.claim_token(
            b, b.settings.default_namespace, forms.model(ClaimIn, {"request": name, "claim": claim})
        )
    if status == "unknown" and name:
        b.login_throttle.hit(client_address(request))
    pre = _pre_csrf(request, b)
    page = render(
        request, "join_status.html", state=status, token=token or "", request_name=name, pre_csrf=pre
    )
    if status != "pending":
        page.delete_cookie(JOIN_COOKIE, path="/")
    return _with_pre_csrf(page, b, pre)


@router.get("/join/status", response_class=HTMLResponse)
async def join_status(request: Request, b: BackendDep) -> Response:
    return await _join_status(request, b)


@router.post("/join/status", response_class=HTMLResponse)
async def join_status_again(request: Request, b: BackendDep) -> Response:
    await _checked_form(request, b)
    return await _join_status(request, b)
