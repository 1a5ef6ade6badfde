"""Browser sessions: a random id in an HttpOnly, Secure, SameSite=Strict cookie, the rest in memory.

* A login always starts a new session (a session id set before login is never promoted: no
  fixation); logout ends it on the server.
* Every session has its own CSRF token; every write made with the cookie must carry it
  (``X-CSRF-Token`` header or ``csrf_token`` form field). Forms used before login (login, join)
  carry a double-submit token instead (``pre_csrf`` cookie = form field).
* Sessions end after ``idle`` seconds without use and ``max_age`` seconds after login.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from .callers import Caller

MAX_SESSIONS = 100_000


@dataclass
class Session:
    sid: str
    caller: Caller
    namespace: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)


class SessionStore:
    def __init__(self, idle_s: float, max_age_s: float, secure: bool) -> None:
        self.idle_s, self.max_age_s, self.secure = idle_s, max_age_s, secure
        self._sessions: dict[str, Session] = {}
        # The __Host- prefix makes browsers refuse the cookie unless Secure, path=/, no Domain.
        self.cookie = "__Host-tokenpool-console" if secure else "tokenpool-console"
        self.pre_cookie = "__Host-tokenpool-pre" if secure else "tokenpool-pre"

    def create(self, caller: Caller, namespace: str) -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            self._expire()
        session = Session(secrets.token_urlsafe(32), caller, namespace)
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self.idle_s or now - session.created > self.max_age_s:
            self._sessions.pop(sid, None)
            return None
        session.seen = now
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.seen > self.idle_s or now - s.created > self.max_age_s:
                del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]

    def cookie_args(self, max_age: int | None = None) -> dict[str, object]:
        return {
            "httponly": True,
            "secure": self.secure,
            "samesite": "strict",
            "path": "/",
            "max_age": max_age if max_age is not None else int(self.max_age_s),
        }


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens (False when either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
