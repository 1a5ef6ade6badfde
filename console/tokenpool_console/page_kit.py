"""What every page shares: the Jinja2 environment (autoescaping on: text a user wrote is always
escaped), the language, the caller's session, and how problems are shown.

Pages are server-rendered; htmx (vendored, static/vendor/) swaps fragments for search, paging
and actions. Forms send the session's CSRF token in the ``X-CSRF-Token`` header (set once on
``<body>`` through ``hx-headers``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import i18n, problems, svg_charts

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals.update(bars=svg_charts.daily_bars, meter=svg_charts.meter)
ENV.filters.update(num=lambda n: f"{int(n):,}", pct=lambda r: "-" if r is None else f"{r * 100:.1f}%")
LANG_COOKIE = "tokenpool-lang"


def lang_of(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in i18n.LANGUAGES:
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "zh" if accept.startswith("zh") else "en"


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def base_of(request: Request) -> str:
    """The path prefix the console is served under (``TOKENPOOL_CONSOLE_BASE_PATH``), or ""."""
    return str(request.scope.get("root_path") or "")


def page_path(request: Request) -> str:
    """The request's path inside the console (without the base path)."""
    base = base_of(request)
    path = request.url.path
    return (path[len(base) :] if base and path.startswith(base) else path) or "/"


def redirect(request: Request, path: str) -> RedirectResponse:
    """303 to a page of the console (``path`` inside the console)."""
    return RedirectResponse(base_of(request) + path, status_code=303)


def local_path(target: str | None, fallback: str = "/") -> str:
    """A redirect target inside the console (never another site: no scheme, no //, no \\)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    return target


def render(
    request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any
) -> HTMLResponse:
    lang = lang_of(request)
    session = getattr(request.state, "session", None)
    b = request.app.state.backend
    base = {
        "lang": lang,
        "t": i18n.translator(lang),
        "base": base_of(request),
        "path": page_path(request),
        "session": session,
        "caller": session.caller if session else None,
        "csrf": session.csrf if session else "",
        "namespace": session.namespace if session else "",
        "namespaces": b.settings.namespaces,
        "join_mode": b.settings.join,
        "quote": quote,
    }
    html = ENV.get_template(template).render(**base, **ctx)
    return HTMLResponse(html, status_code=status, headers=headers)


def render_problem(
    request: Request, problem: problems.Problem, headers: dict[str, str] | None = None
) -> Response:
    if problem.status == 401:
        target = "/login?next=" + quote(page_path(request))
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": base_of(request) + target})
        return redirect(request, target)
    if is_htmx(request):
        extra = {"HX-Retarget": "#notice", "HX-Reswap": "innerHTML", **(headers or {})}
        return render(request, "_problem.html", problem.status, extra, problem=problem)
    return render(request, "problem.html", problem.status, headers, problem=problem)
