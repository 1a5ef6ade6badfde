"""A load loop against the proxy's Service for the rollout tests: every request a new connection
(so each one is routed by the Service afresh), no retries (a failure is a failure), bounded in
count and time, stopped by the test once the disruption is over."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import httpx

from tests.support.waiting import async_wait_for

CHAT = {"model": "augment-chat", "messages": [{"role": "user", "content": "count me"}]}


@dataclass
class LoadFigures:
    sent: int = 0
    ok: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def __str__(self) -> str:
        rate = self.sent / self.seconds if self.seconds else 0
        return (
            f"{self.sent} requests in {self.seconds:.1f}s ({rate:.0f}/s): "
            f"{self.ok} ok, {self.failed} failed {dict(self.failures)}"
        )


class LoadLoop:
    """``async with LoadLoop(url, token) as load: ...`` — load runs in the block; ``load.figures``."""

    def __init__(
        self, url: str, token: str, workers: int = 4, max_requests: int = 50_000, max_seconds: float = 300
    ):
        self.url, self.token, self.workers = url, token, workers
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.figures = LoadFigures()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> LoadLoop:
        self._started = time.monotonic()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self.figures.seconds = time.monotonic() - self._started

    async def wait_for_successes(self, n: int, timeout: float = 60) -> None:
        async def reached() -> bool:
            return self.figures.ok >= n

        try:
            await async_wait_for(reached, timeout=timeout, what=f"{n} answered requests")
        except TimeoutError as exc:
            raise TimeoutError(f"load reached only {self.figures}") from exc

    async def _worker(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:
            while not self._stop.is_set():
                if (
                    self.figures.sent >= self.max_requests
                    or time.monotonic() - self._started > self.max_seconds
                ):
                    return
                self.figures.sent += 1
                try:
                    r = await client.post(f"{self.url}/v1/chat/completions", json=CHAT)
                except httpx.HTTPError as exc:
                    self.figures.failures[type(exc).__name__] += 1
                    continue
                if r.status_code == 200:
                    self.figures.ok += 1
                else:
                    self.figures.failures[f"HTTP {r.status_code}"] += 1
