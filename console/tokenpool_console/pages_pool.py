"""Admin pages about the pool: upstream tokens, allocations (one user or many at once) and
statistics. Same actions as the JSON API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from . import account_sign_in, allocation_actions, forms, problems, queries, token_actions
from .api_models import AllocationCreate, BulkAssign, SignInFinish, TokenCreate
from .backend import Backend
from .guards import BackendDep, form_fields
from .page_kit import render
from .pages_admin import changed, ns_of
from .pages_self import PageCaller
from .tallies import utc_today

router = APIRouter(include_in_schema=False)
TOKENS, ALLOCATIONS = token_actions.TOKENS, allocation_actions.ALLOCATIONS


def _tokens_context(b: Backend, ns: str, params: dict[str, str]) -> dict[str, Any]:
    state = params.get("state", "") if params.get("state") in queries.TOKEN_STATES else ""
    page = queries.tokens(
        b.mirror.pool(ns), params.get("q", ""), state, forms.int_or_none(params.get("page")) or 1
    )
    return {
        "page": page,
        "q": params.get("q", ""),
        "state": state,
        "states": queries.TOKEN_STATES,
        "today": utc_today(),
    }


@router.get("/tokens", response_class=HTMLResponse)
async def tokens_page(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", TOKENS)
    return render(request, "tokens.html", **_tokens_context(b, ns, dict(request.query_params)))


@router.get("/tokens/-/table", response_class=HTMLResponse)
async def tokens_table(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", TOKENS)
    return render(request, "_tokens_table.html", **_tokens_context(b, ns, dict(request.query_params)))


def _account_fields(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", ""),
        "labels": forms.labels(form.get("labels")),
        "maxConcurrency": forms.int_or_none(form.get("max_concurrency")),
        "minIntervalSeconds": forms.int_or_none(form.get("min_interval_seconds")),
        "maxAllocations": forms.int_or_none(form.get("max_allocations")),
        "description": form.get("description", ""),
    }


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    body = forms.model(
        TokenCreate,
        {
            "provider": form.get("provider", "Augment"),
            "endpoint": form.get("endpoint", ""),
            "credential": form.get("credential", ""),
            **_account_fields(form),
        },
    )
    await token_actions.create_token(b, authed.caller, ns_of(authed, b), body)
    return changed(
        render(
            request, "_flash_only.html", message="Upstream token added; its credential is stored in a Secret."
        )
    )


@router.post("/tokens/-/oauth/start", response_class=HTMLResponse)
async def start_sign_in(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    started = await account_sign_in.start(b, authed, ns_of(authed, b))
    minutes = -(-started["expiresInSeconds"] // 60)
    return render(request, "_sign_in_form.html", sign_in=started, minutes=minutes)


@router.post("/tokens/-/oauth/finish", response_class=HTMLResponse)
async def finish_sign_in(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    fields = {"loginId": form.get("login_id", ""), "answer": form.get("answer", ""), **_account_fields(form)}
    await account_sign_in.finish(b, authed, ns_of(authed, b), forms.model(SignInFinish, fields))
    return changed(
        render(
            request,
            "_sign_in_done.html",
            message="Account signed in and added; its access token is stored in a Secret.",
        )
    )


@router.post("/tokens/{name}/{action}", response_class=HTMLResponse)
async def token_action(
    request: Request, b: BackendDep, authed: PageCaller, name: str, action: str
) -> Response:
    ns, caller = ns_of(authed, b), authed.caller
    form = await form_fields(request)
    if action in ("suspend", "resume"):
        await token_actions.set_suspended(b, caller, ns, name, action == "suspend")
        message = "Done."
    elif action == "check":
        await token_actions.check_now(b, caller, ns, name)
        message = "A health check was asked for."
    elif action == "delete":
        await token_actions.delete_token(b, caller, ns, name)
        message = "Deleted."
    else:
        raise problems.not_found(f"action {action!r}")
    return render(request, "_tokens_table.html", message=message, **_tokens_context(b, ns, form))


def _allocations_context(b: Backend, ns: str, params: dict[str, str]) -> dict[str, Any]:
    page = queries.allocations(
        b.mirror.pool(ns), params.get("q", ""), page=forms.int_or_none(params.get("page")) or 1
    )
    return {"page": page, "q": params.get("q", "")}


@router.get("/allocations", response_class=HTMLResponse)
async def allocations_page(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", ALLOCATIONS)
    return render(request, "allocations.html", **_allocations_context(b, ns, dict(request.query_params)))


@router.get("/allocations/-/table", response_class=HTMLResponse)
async def allocations_table(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", ALLOCATIONS)
    return render(
        request, "_allocations_table.html", **_allocations_context(b, ns, dict(request.query_params))
    )


@router.post("/allocations", response_class=HTMLResponse)
async def allocate(request: Request, b: BackendDep, authed: PageCaller) -> Response:
    form = await form_fields(request)
    users = forms.names(form.get("users"))
    priority = forms.int_or_none(form.get("priority"))
    grant = {
        "tokens": forms.names(form.get("tokens")) or None,
        "selector": forms.labels(form.get("selector")) or None,
        "count": forms.int_or_none(form.get("count")),
        "priority": 1 if priority is None else priority,
    }
    ns = ns_of(authed, b)
    if len(users) == 1:
        await allocation_actions.create_allocation(
            b, authed.caller, ns, forms.model(AllocationCreate, {"user": users[0], **grant})
        )
        return changed(
            render(
                request,
                "_flash_only.html",
                message="Allocation created; the operator decides what is granted.",
            )
        )
    result = await allocation_actions.bulk_assign(
        b, authed.caller, ns, forms.model(BulkAssign, {"users": users, **grant})
    )
    return changed(render(request, "_bulk_result.html", result=result))


@router.post("/allocations/{name}/{action}", response_class=HTMLResponse)
async def allocation_action(
    request: Request, b: BackendDep, authed: PageCaller, name: str, action: str
) -> Response:
    ns = ns_of(authed, b)
    form = await form_fields(request)
    if action == "delete":
        await allocation_actions.delete_allocation(b, authed.caller, ns, name)
    elif action in ("suspend", "resume"):
        await allocation_actions.set_suspended(b, authed.caller, ns, name, action == "suspend")
    else:
        raise problems.not_found(f"action {action!r}")
    return render(request, "_allocations_table.html", message="Done.", **_allocations_context(b, ns, form))


@router.get("/stats", response_class=HTMLResponse)
async def stats_page(request: Request, b: BackendDep, authed: PageCaller, days: int = 30) -> Response:
    ns = ns_of(authed, b)
    await b.access.check(authed.caller, ns, "list", "poolusers")
    await b.access.check(authed.caller, ns, "list", TOKENS)
    days = min(max(days, 1), 31)
    return render(request, "stats.html", stats=b.stats.get(b.mirror.pool(ns), utc_today(), days), days=days)
