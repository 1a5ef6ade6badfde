"""Augment sign-ins in progress, in the console's memory only (docs/console.md, "Signing in an
Augment account").

A sign-in's verifier and ``state`` (:class:`tokenpool.accounts.augment_oauth.PendingLogin`) never
leave this process: the admin gets a random id and the sign-in URL. A sign-in is bound to who
started it (the browser session, or for API scripts the identity of the bearer token) and to the
namespace, and is handed out once: :meth:`SignIns.take` removes it, so a second finish, or a
finish from another session, finds nothing. An expired sign-in is kept a while longer so the
admin is told it expired rather than that it is unknown; memory is bounded in total and per owner.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from tokenpool.accounts import augment_oauth as oauth

# An expired sign-in is remembered this much longer (for the "expired" message), then dropped.
EXPIRED_KEPT_S = 600.0
MAX_SIGN_INS = 1000
MAX_PER_OWNER = 5


def owner_key(kind: str, secret_or_identity: str) -> str:
    """Who a sign-in belongs to, as a digest (a session id is a secret: not kept in clear twice)."""
    return hashlib.sha256(f"{kind}\n{secret_or_identity}".encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    owner: str
    namespace: str
    pending: oauth.PendingLogin


class SignIns:
    def __init__(self, ttl_s: float, authorize_url: str = oauth.AUTHORIZE_URL) -> None:
        self.ttl_s, self.authorize_url = ttl_s, authorize_url
        self._entries: dict[str, _Entry] = {}  # sign-in id -> entry, oldest first

    def start(self, owner: str, namespace: str) -> tuple[str, oauth.PendingLogin]:
        self._expire()
        mine = [sid for sid, e in self._entries.items() if e.owner == owner]
        for sid in mine[: max(0, len(mine) - MAX_PER_OWNER + 1)]:
            del self._entries[sid]
        while len(self._entries) >= MAX_SIGN_INS:
            del self._entries[next(iter(self._entries))]
        pending = oauth.start(self.authorize_url, self.ttl_s)
        sign_in_id = secrets.token_urlsafe(18)
        self._entries[sign_in_id] = _Entry(owner, namespace, pending)
        return sign_in_id, pending

    def take(self, sign_in_id: str, owner: str, namespace: str) -> oauth.PendingLogin | None:
        """The sign-in, removed (single use), when ``owner`` started it in ``namespace``; else
        None, and a sign-in of someone else stays theirs."""
        self._expire()
        entry = self._entries.get(sign_in_id)
        if entry is None or entry.owner != owner or entry.namespace != namespace:
            return None
        del self._entries[sign_in_id]
        return entry.pending

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        cutoff = time.monotonic() - EXPIRED_KEPT_S
        for sid in [sid for sid, e in self._entries.items() if e.pending.expires_at < cutoff]:
            del self._entries[sid]
