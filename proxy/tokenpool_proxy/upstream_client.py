"""THE upstream HTTP client: one aiohttp session for every upstream call, and its idle-gap timeout.

The idle gap (``read_timeout_seconds``: the longest silence between two bytes of an answer,
before its head as after its first byte; docs/proxy.md, "Health") is aiohttp's ``sock_read``,
kept by aiohttp's own connection protocol with one change in *how*: aiohttp cancels and
schedules a timer on every read from the socket, a measurable share of the proxy's CPU per
relayed chunk (bench/README.md, "Open streams"). :class:`IdleGapProtocol` only notes when bytes
last arrived; its timer, when it fires, looks at that time and sets itself again for the rest of
the gap if the socket was not silent for all of it. The same cut at the same moment with the
same error (aiohttp's ``SocketTimeoutError``, a ``TimeoutError``), and aiohttp still decides
when the clock runs (from the request's end; stopped while its buffer is full and at the end of
the body): one timer per answer instead of one per chunk.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from aiohttp.client_proto import ResponseHandler

from .settings import ProxySettings


class IdleGapProtocol(ResponseHandler):
    """aiohttp's response protocol with a lazily re-armed ``sock_read`` timer (module docstring),
    and no resume of reading that was never paused.

    aiohttp calls ``_reschedule_timeout`` when the clock (re)starts: at the end of the request,
    on every read from the socket, when reading resumes; ``_drop_timeout`` stops it. The
    exact aiohttp version is pinned (pyproject.toml); tests/unit/test_upstream_client.py checks
    that these are still the hooks it calls.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._last_read = 0.0

    def _reschedule_timeout(self) -> None:
        timeout = self._read_timeout
        if not timeout:
            self._drop_timeout()
            return
        self._last_read = now = self._loop.time()
        if self._read_timeout_handle is None:
            self._read_timeout_handle = self._loop.call_at(now + timeout, self._check_idle)

    def resume_reading(self, resume_parser: bool = True) -> None:
        """aiohttp's reader asks to resume after every read that leaves its buffer low, paused
        or not (a parser call and a transport call per relayed chunk); only a paused connection
        has anything to resume: the transport, and the parse of what arrived while paused."""
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)

    def _check_idle(self) -> None:
        self._read_timeout_handle = None
        timeout = self._read_timeout
        if not timeout:
            return
        rest = self._last_read + timeout - self._loop.time()
        if rest > 0:  # bytes came since the timer was set: wait for the rest of the gap
            self._read_timeout_handle = self._loop.call_later(rest, self._check_idle)
        else:
            self._on_read_timeout()


def _new_protocol(loop: asyncio.AbstractEventLoop) -> ResponseHandler:
    return IdleGapProtocol(loop)


class UpstreamConnector(aiohttp.TCPConnector):
    """The pool of upstream connections, each with an :class:`IdleGapProtocol`.

    No connection cap: concurrency is bounded per token by the balancer, not by the pool.
    """

    def __init__(self) -> None:
        super().__init__(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        self._factory = functools.partial(_new_protocol, loop=self._loop)


def upstream_session(settings: ProxySettings) -> aiohttp.ClientSession:
    """THE upstream client: one pool for every request (no per-request clients)."""
    # sock_read: the idle gap (above). The overall deadline is checked per piece of the answer
    # on the chat path (chat.py): aiohttp's ``total`` would arm a timer per request.
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout_seconds, sock_read=settings.read_timeout_seconds
    )
    # No cookie jar: one session serves many upstream accounts, whose cookies must never mix.
    return aiohttp.ClientSession(
        connector=UpstreamConnector(),
        timeout=timeout,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
