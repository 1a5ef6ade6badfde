"""Counting as the proxy does, for tests of the pure usage parts."""

from __future__ import annotations

from datetime import datetime

from tokenpool_proxy.usage.counters import UsageBook


def served(
    book: UsageBook,
    user: str,
    upstream: str | None,
    success: bool,
    prompt_tokens: int,
    completion_tokens: int,
    at: datetime,
) -> None:
    """One client request answered after one upstream attempt (None: no token was tried)."""
    if upstream is not None:
        book.attempt(user, upstream, success, prompt_tokens, completion_tokens, at)
    book.request(user, success, at)
