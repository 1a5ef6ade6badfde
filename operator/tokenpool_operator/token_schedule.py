"""Per-token work on a schedule, the part the operator's health checks and standing readings share.

Each keeps, per UpstreamToken, when its next run is due (in memory; each persists its schedule
in status so a restart keeps it). A loop wakes every ``tick_s``, starts the due runs as tasks,
at most ``concurrency`` at once, one per token at a time, with one HTTP session for the upstream
calls; a run that fails unexpectedly is logged and retried after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient

log = logging.getLogger(__name__)
Key = tuple[str, str]
Body = dict[str, Any]


class TokenSchedule:
    what = "scheduled token work"  # for the log

    def __init__(
        self,
        kube: KubeClient,
        writer: Any,
        tokens: dict[Key, Body],
        concurrency: int,
        timeout_s: float,
        user_agent: str,
        tick_s: float = 0.5,
        retry_s: float = 300.0,
    ) -> None:
        self.kube = kube
        self.writer = writer  # compiled routes (the credential each run uses), Events
        self.tokens = tokens  # the operator's cache of UpstreamTokens
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.tick_s = tick_s
        self.retry_s = retry_s
        self._slots = asyncio.Semaphore(concurrency)
        self._due: dict[Key, datetime] = {}
        self._running: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what a kind of work defines ------------------------------------------------------------
    async def run_one(self, session: aiohttp.ClientSession, key: Key) -> None:
        raise NotImplementedError

    def due_now(self, now: datetime) -> list[Key]:
        """The tokens to run now (by default: those whose time has come)."""
        return [k for k, at in self._due.items() if at <= now]

    async def before_tick(self) -> None:
        """Work each tick does before starting runs (e.g. publishing the schedule)."""

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session:
            while True:
                try:
                    await self.before_tick()
                    self._start_due(session)
                except Exception:
                    log.exception("%s loop failed; continuing", self.what)
                await asyncio.sleep(self.tick_s)

    def _start_due(self, session: aiohttp.ClientSession) -> None:
        for key in self.due_now(datetime.now(UTC)):
            if key in self._running:
                continue
            self._running.add(key)
            task = asyncio.create_task(self._guarded(session, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _guarded(self, session: aiohttp.ClientSession, key: Key) -> None:
        try:
            async with self._slots:
                await self.run_one(session, key)
        except Exception:
            log.exception("%s of %s/%s failed", self.what, *key)
            self._due[key] = datetime.now(UTC) + timedelta(seconds=self.retry_s)
        finally:
            self._running.discard(key)

    def route(self, ns: str, name: str) -> c.UpstreamRoute | None:
        """The compiled route of a token: its credential and endpoint as the proxy uses them."""
        secret = self.writer.compiled("secrets", ns, c.upstream_route_name(name))
        if secret is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        try:
            return c.parse_upstream_route(data)
        except (KeyError, ValueError):
            return None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
