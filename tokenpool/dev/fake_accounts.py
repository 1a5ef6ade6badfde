"""The account side of the fake Augment upstream: OAuth code exchange and account standing.

Endpoints (``POST {tenant}<path>``, bearer = the account's access token, except ``token``):
* ``token``: the OAuth code exchange. A code registered with ``PUT /_control/oauth/{code}``
  ``{"access_token": …}`` is exchanged once (a second use is 400 ``invalid_grant``, as a real
  authorization server answers); the request must carry ``grant_type``, ``client_id`` and a
  ``code_verifier`` (recorded, so tests can check the PKCE challenge).
* ``subscription-info``: ``{"subscription": {"ActiveSubscription": {plan_name, end_date,
  usage_balance_depleted}}}``, ``{"subscription": {"InactiveSubscription": {}}}`` when expired.
* ``get-credit-info``: ``{usage_units_total, usage_units_remaining}``.
* ``get-models``: ``{default_model, models}``.

Knobs, per access token: ``PUT /_control/accounts/{token}`` with any of ``plan``, ``end_date``,
``depleted``, ``expired`` (inactive subscription), ``banned`` (403 on every endpoint),
``credits_total``, ``credits_remaining``, ``credits_per_chat`` (taken off ``credits_remaining``
by each answered chat) and ``missing`` (endpoint names answered 404, as when the upstream
switches one off). ``GET /_control/accounts/{token}`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ENDPOINTS = ("subscription-info", "get-credit-info", "get-models")
DEFAULT_ACCOUNT: dict[str, Any] = {
    "plan": "Developer",
    "end_date": "2099-01-01T00:00:00Z",
    "depleted": False,
    "expired": False,
    "banned": False,
    "credits_total": 1000,
    "credits_remaining": 1000,
    "credits_per_chat": 0,
    "missing": [],
}


@dataclass
class Accounts:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # OAuth code -> access token
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def account(self, token: str) -> dict[str, Any]:
        return self.accounts.setdefault(token, dict(DEFAULT_ACCOUNT))

    def charge(self, token: str) -> None:
        """One answered chat: credits fall when the account is set to charge per chat."""
        account = self.accounts.get(token)
        if account and account["credits_per_chat"]:
            account["credits_remaining"] = max(0, account["credits_remaining"] - account["credits_per_chat"])
            if account["credits_remaining"] == 0:
                account["depleted"] = True


def handles(path: str) -> bool:
    return path.endswith(("/token", *(f"/{e}" for e in ENDPOINTS)))


async def endpoint(request: web.Request, accounts: Accounts) -> web.Response:
    name = request.path.rsplit("/", 1)[1]
    if name == "token":
        return await _exchange(request, accounts)
    token = request.headers.get("authorization", "")[7:]
    account = accounts.account(token)
    if name in account["missing"]:
        return web.json_response({"error": "not found"}, status=404)
    if account["banned"]:
        return web.Response(status=403, text="Your account has been suspended because of unusual activity.")
    if name == "subscription-info":
        if account["expired"]:
            return web.json_response({"subscription": {"InactiveSubscription": {}}})
        active = {
            "plan_name": account["plan"],
            "end_date": account["end_date"],
            "usage_balance_depleted": account["depleted"],
        }
        return web.json_response({"subscription": {"ActiveSubscription": active}})
    if name == "get-credit-info":
        return web.json_response(
            {
                "usage_units_total": account["credits_total"],
                "usage_units_remaining": account["credits_remaining"],
            }
        )
    return web.json_response({"default_model": "fake-default", "models": [{"name": "fake-default"}]})


async def _exchange(request: web.Request, accounts: Accounts) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "invalid_request"}, status=400)
    if (
        not isinstance(body, dict)
        or body.get("grant_type") != "authorization_code"
        or not body.get("code_verifier")
    ):
        return web.json_response({"error": "invalid_request"}, status=400)
    accounts.exchanges.append({"client_id": body.get("client_id"), "code_verifier": body["code_verifier"]})
    token = accounts.codes.pop(str(body.get("code")), None)  # single use
    if token is None:
        return web.json_response({"error": "invalid_grant"}, status=400)
    return web.json_response({"access_token": token, "token_type": "Bearer"})


async def control(request: web.Request, accounts: Accounts, what: str) -> web.Response:
    """``accounts/{token}`` (PUT merges knobs, GET reads), ``oauth/{code}`` (PUT registers),
    ``oauth`` (GET: the exchanges seen, verifiers included: test data, not secrets)."""
    kind, _, key = what.partition("/")
    if kind == "accounts" and request.method == "PUT":
        accounts.account(key).update(await request.json())
        return web.json_response({"ok": True})
    if kind == "accounts" and request.method == "GET":
        return web.json_response(accounts.account(key))
    if kind == "oauth" and key and request.method == "PUT":
        accounts.codes[key] = str((await request.json())["access_token"])
        return web.json_response({"ok": True})
    if kind == "oauth" and request.method == "GET":
        return web.json_response(accounts.exchanges)
    return web.json_response({"error": "unknown control call"}, status=404)
