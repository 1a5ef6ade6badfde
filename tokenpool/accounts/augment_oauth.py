"""Adding an Augment account by its OAuth sign-in (PKCE), as the Augment IDE tools do it.

1. :func:`start` makes a verifier, its S256 challenge and a random ``state``, and the URL the
   admin opens (``{auth}/authorize?response_type=code&code_challenge=…&client_id=v&state=…&
   prompt=login``).
2. The admin signs in; the page shows ``{"code": …, "state": …, "tenant_url": …}``, which the admin
   pastes back: :func:`parse_answer` reads it.
3. :func:`check` refuses an answer of another login (``state``), an expired login and a tenant
   URL outside the allowed hosts (the server POSTs the code there: only Augment's hosts unless the
   admin widens it), and :func:`exchange` POSTs the code with the verifier to
   ``{tenant_url}token`` and returns ``access_token``.

The verifier lives only in the :class:`PendingLogin` of one login (in the CLI process; in the
console's memory with an expiry) and is used once. The access token goes only into the
credential Secret: no message, log line or error here contains it or the code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import aiohttp

AUTHORIZE_URL = "https://auth.augmentcode.com/authorize"
CLIENT_ID = "v"
ALLOWED_TENANT_HOSTS = ("*.augmentcode.com",)
LOGIN_TTL_S = 600.0


class LoginError(ValueError):
    """The login cannot go on; the message tells the admin what to do (never a secret)."""


class TenantUnreachable(LoginError):
    """The tenant's ``token`` endpoint did not answer (network, timeout): not the admin's fault."""


@dataclass(frozen=True)
class PendingLogin:
    """One sign-in in progress: what the exchange needs, and until when it may happen."""

    state: str
    verifier: str = field(repr=False)
    url: str
    expires_at: float  # time.monotonic()


@dataclass(frozen=True)
class Answer:
    """What the sign-in page shows, as pasted back."""

    code: str = field(repr=False)
    state: str
    tenant_url: str


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start(authorize_url: str = AUTHORIZE_URL, ttl_s: float = LOGIN_TTL_S) -> PendingLogin:
    verifier = secrets.token_urlsafe(48)  # 64 characters of the RFC 7636 alphabet
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "code_challenge": _challenge(verifier),
            "client_id": CLIENT_ID,
            "state": state,
            "prompt": "login",
        }
    )
    return PendingLogin(state, verifier, f"{authorize_url}?{query}", time.monotonic() + ttl_s)


def parse_answer(text: str) -> Answer:
    """The pasted JSON ``{"code", "state", "tenant_url"}``; a clear error for anything else."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise LoginError(
            'paste the JSON the sign-in page shows: {"code": "...", "state": "...", "tenant_url": "..."}'
        ) from None
    if not isinstance(doc, dict):
        raise LoginError("the sign-in answer must be a JSON object with code, state and tenant_url")
    missing = [k for k in ("code", "state", "tenant_url") if not isinstance(doc.get(k), str) or not doc[k]]
    if missing:
        raise LoginError(f"the sign-in answer has no {', '.join(missing)}")
    tenant = doc["tenant_url"].strip()
    if not tenant.endswith("/"):
        tenant += "/"
    return Answer(doc["code"].strip(), doc["state"].strip(), tenant)


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
        if host == pattern:
            return True
    return False


def check(
    pending: PendingLogin, answer: Answer, allowed_hosts: tuple[str, ...] = ALLOWED_TENANT_HOSTS
) -> None:
    """Refuse what must not be exchanged: another login's answer, an expired login, a tenant URL
    on a host that is not allowed (the code is POSTed there: pasting a URL must not make a server
    call anything it likes), or not https (plain http only on an allowed loopback host)."""
    if not secrets.compare_digest(pending.state, answer.state):
        raise LoginError("the answer's state does not match this login: it belongs to another sign-in")
    if time.monotonic() > pending.expires_at:
        raise LoginError("this login has expired: start a new one and sign in again")
    parts = urlsplit(answer.tenant_url)
    host = (parts.hostname or "").lower()
    if not _host_allowed(host, allowed_hosts):
        raise LoginError(
            f"tenant host {host!r} is not an allowed Augment host ({', '.join(allowed_hosts)}); "
            "allow it explicitly if it is yours"
        )
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise LoginError(f"the tenant URL must be https, got {parts.scheme or 'no scheme'}")


async def exchange(session: aiohttp.ClientSession, pending: PendingLogin, answer: Answer) -> str:
    """POST the code and the verifier to ``{tenant_url}token``; the access token."""
    body = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code_verifier": pending.verifier,
        "redirect_uri": "",
        "code": answer.code,
    }
    try:
        async with session.post(answer.tenant_url + "token", json=body) as resp:
            status = resp.status
            doc = await resp.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise TenantUnreachable(f"cannot reach {answer.tenant_url}token: {type(exc).__name__}") from None
    if status != 200:
        raise LoginError(
            f"the upstream refused the code (HTTP {status}): it was used already, expired or belongs "
            "to another login; start again"
        )
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise LoginError("the upstream's answer holds no access_token")
    return token
