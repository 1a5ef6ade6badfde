"""Admin pages about users: overview, the user list (search, filters, paging), a user's page with
its actions, and access requests with invitation codes. Every handler calls the same actions as
the JSON API, so a page can do exactly what the API allows its caller."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from . import forms, joining, queries, user_actions
from .api_models import InvitationCreate, UserCreate, UserEdit
from .backend import Backend
from .guards import BackendDep, form_fields
from .page_kit import base_of, render
from .pages_self import PageCaller
from .pool_stats import user_summary
from .tallies import utc_today
from .writes import row

router = APIRouter(include_in_schema=False)
USERS = user_actions.USERS


def ns_of(authed: Any, b: Backend) -> str:
    if authed.caller.is_pool_user:
        return str(authed.caller.namespace)
    return str(authed.session.namespace if authed.session else b.settings.default_namespace)


def changed(response: Response) -> Response:
    """Tell the page's tables to reload (they listen for ``pool-changed``)."""
    response.headers["HX-Trigger"] = "pool-changed"
    return response


def once(request: Request, token: str, heading: str) -> Response:
    return changed(render(request, "_token_once_page.html", token=token, heading=heading))


def quotas(b: Backend) -> dict[str, Any]:
    return {"default_quota": b.settings.default_quota, "max_quota": b.settings.max_quota}


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", USERS)
    return render(request, "overview.html", stats=b.stats.get(b.mirror.pool(ns), utc_today(), 30))


def _users_context(b: Backend, ns: str, params: dict[str, str]) -> dict[str, Any]:
    q = params.get("q", "")
    role = params.get("role", "") if params.get("role") in ("User", "Admin") else ""
    state = params.get("state", "") if params.get("state") in queries.USER_STATES else ""
    sort = params.get("sort", "name") if params.get("sort") in queries.USER_SORTS else "name"
    page = queries.users(b.mirror.pool(ns), q, role, state, sort, forms.int_or_none(params.get("page")) or 1)
    context: dict[str, Any] = {"page": page, "today": utc_today(), "q": q, "role": role, "state": state}
    return {**context, "sort": sort, **quotas(b)}


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", USERS)
    return render(request, "users.html", **_users_context(b, ns, dict(request.query_params)))


@router.get("/users/-/table", response_class=HTMLResponse)
async def users_table(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", USERS)
    return render(request, "_users_table.html", **_users_context(b, ns, dict(request.query_params)))


@router.post("/users", response_class=HTMLResponse)
async def create_user(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    body = forms.model(
        UserCreate,
        {
            "name": form.get("name", ""),
            "displayName": form.get("display_name", ""),
            "email": form.get("email", ""),
            "role": form.get("role", "User"),
            "tokenQuota": forms.int_or_none(form.get("token_quota")),
            "limits": forms.limits(form),
        },
    )
    _, token = await user_actions.create_user(b, authed.caller, ns_of(authed, b), body)
    return once(request, token, "User created. Personal token:")


@router.post("/users/{name}/{action}", response_class=HTMLResponse)
async def user_action(
    request: Request, b: BackendDep, authed: PageCaller, name: str, action: str
) -> Response:
    ns, caller = ns_of(authed, b), authed.caller
    form = await form_fields(request)
    if action == "rotate":
        return once(request, await user_actions.rotate(b, caller, ns, name), "New personal token:")
    if action in ("suspend", "resume"):
        await user_actions.set_suspended(b, caller, ns, name, action == "suspend")
    elif action == "approve":
        await joining.approve(b, caller, ns, name)
    elif action in ("reject", "delete"):
        await (joining.reject if action == "reject" else user_actions.delete_user)(b, caller, ns, name)
        response = Response(status_code=204, headers={"HX-Redirect": base_of(request) + "/users"})
        return response
    elif action == "edit":
        body = forms.model(
            UserEdit,
            {
                "displayName": form.get("display_name"),
                "email": form.get("email"),
                "role": form.get("role"),
                "tokenQuota": forms.int_or_none(form.get("token_quota")),
                "limits": forms.limits(form),
            },
        )
        await user_actions.edit_user(b, caller, ns, name, body)
    else:
        raise user_actions.problems.not_found(f"action {action!r}")
    if request.headers.get("hx-target") == "table":
        return render(request, "_users_table.html", message="Done.", **_users_context(b, ns, form))
    return Response(status_code=204, headers={"HX-Refresh": "true"})


@router.get("/users/{name}", response_class=HTMLResponse)
async def user_page(request: Request, b: BackendDep, authed: PageCaller, name: str) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "get", USERS, name)
    user = row(b, ns, USERS, name)
    return render(
        request,
        "user.html",
        user=user,
        summary=user_summary(user, utc_today(), 30),
        allocations=queries.allocations_of(b.mirror.pool(ns), name),
        **quotas(b),
    )


@router.get("/requests", response_class=HTMLResponse)
async def requests_page(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", USERS)
    pending = queries.users(
        b.mirror.pool(ns), state="pending", sort="created", per_page=queries.MAX_PER_PAGE
    ).items
    invitations = await joining.list_invitations(b, authed.caller, ns)
    return render(request, "requests.html", pending=pending, invitations=invitations)


@router.post("/requests/invitations", response_class=HTMLResponse)
async def create_invitation(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    body = forms.model(
        InvitationCreate,
        {
            "uses": forms.int_or_none(form.get("uses")),
            "validDays": forms.int_or_none(form.get("valid_days")),
            "note": form.get("note", ""),
        },
    )
    code = await joining.create_invitation(b, authed.caller, ns_of(authed, b), body)
    return once(request, code, "Invitation code:")


@router.post("/requests/invitations/{invitation_id}/revoke")
async def revoke_invitation(b: BackendDep, authed: PageCaller, invitation_id: str) -> Response:
    await joining.revoke_invitation(b, authed.caller, ns_of(authed, b), invitation_id)
    return Response(status_code=204, headers={"HX-Refresh": "true"})


@router.post("/requests/{name}/{action}")
async def decide_request(b: BackendDep, authed: PageCaller, name: str, action: str) -> Response:
    ns = ns_of(authed, b)
    if action == "approve":
        await joining.approve(b, authed.caller, ns, name)
    elif action == "reject":
        await joining.reject(b, authed.caller, ns, name)
    else:
        raise user_actions.problems.not_found(f"action {action!r}")
    return Response(status_code=204, headers={"HX-Refresh": "true"})
