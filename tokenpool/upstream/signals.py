"""The meaning of an upstream's answer for the *account* that sent the request.

Two kinds of evidence, treated differently because one of them can be written by a user:

* **HTTP statuses are the upstream's own**: 401 is a revoked token, 429 rate limiting, 5xx
  trouble on its side; 400/404/413/422 reject *this request* (the client's fault, passed on as
  such, never counted against the account).
* **Texts can be the model's**: a notice ("Your account has been suspended…", "Request
  blocked…") arriving inside a 200 answer may be the model repeating a prompt. Even in an HTTP
  error body a notice may be about the prompt rather than the account. A notice is therefore a
  *suspicion* (``verdict="notice"``): the proxy confirms it with a probe that carries no user
  text before any verdict, and never re-sends the same prompt to another account.

Notices are matched only in the upstream's own shape: at the very start of the text, a whole
short notice, never a substring somewhere in an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# unhealthy: no traffic until cleared; cooldown: rest, then half-open; fail: try another token,
# no penalty; reject: the request itself is refused (client 4xx, no failover, no penalty);
# notice: an account notice to confirm before any verdict (no failover).
Verdict = Literal["unhealthy", "cooldown", "fail", "reject", "notice"]

# The upstream's account notices, as the start of the text (lower case) → health reason.
NOTICE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("request blocked", "Blocked"),
    ("your subscription for account", "Suspended"),
    ("your account has been suspended", "Suspended"),
    ("your access has been restricted", "Suspended"),
    ("you are out of user messages", "OutOfCredits"),
    ("you have run out of credits", "OutOfCredits"),
)
# Longer than this is an answer, not a notice (the longest known notice is about 120 characters).
MAX_NOTICE_CHARS = 400
REJECTED_STATUSES = frozenset({400, 404, 413, 422})


@dataclass(frozen=True, slots=True)
class Signal:
    verdict: Verdict
    reason: str  # CamelCase category, as status.health reasons
    status: int | None = None
    retry_after: float | None = None


def notice_reason(text: str) -> str | None:
    """The health reason of an account notice, when ``text`` is one (its whole text)."""
    head = text.strip()
    if not head or len(head) > MAX_NOTICE_CHARS:
        return None
    lowered = head.lower()
    for prefix, reason in NOTICE_PREFIXES:
        if lowered.startswith(prefix):
            return reason
    return None


def notice_verdict(reason: str) -> Verdict:
    """What a *confirmed* notice does to the account: a block rests it, the others stop it."""
    return "cooldown" if reason == "Blocked" else "unhealthy"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare upstream and ignored: backoff applies)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86400 else None


def classify_http(status: int, body: str, retry_after: str | None = None) -> Signal:
    """An HTTP error answer of the upstream (``body``: the first few KiB of its text)."""
    if status in REJECTED_STATUSES:
        return Signal("reject", "RequestRejected", status)
    if status == 401:
        return Signal("unhealthy", "Unauthorized", status)
    notice = notice_reason(body)
    if notice is not None and status in (402, 403, 429):
        return Signal("notice", notice, status)
    if status == 403:
        return Signal("unhealthy", "Unauthorized", status)
    if status == 429:
        return Signal("cooldown", "RateLimited", status, parse_retry_after(retry_after))
    if status >= 500:
        return Signal("cooldown", "ServerError", status)
    return Signal("fail", "ClientError", status)
