"""Client-side load for the usage tests: chat requests spread over proxy replicas, recording
which replica answered what and when (the tests compare it with the status the replicas wrote)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CHAT = {"model": "augment-chat", "messages": [{"role": "user", "content": "count me"}]}


@dataclass
class LoadResult:
    ok: dict[str, list[float]] = field(default_factory=dict)  # replica url -> completion times
    statuses: dict[int, int] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)  # connections that died without an answer
    resent: int = 0  # of those, sent again to another replica (``resend_resets``)

    @property
    def successes(self) -> int:
        return sum(len(v) for v in self.ok.values())


async def chat_load(
    urls: list[str], personal_token: str, total: int, concurrency: int = 16, resend_resets: bool = False
) -> LoadResult:
    """``total`` requests, round-robin over ``urls``; a refused connection (replica gone) is
    retried on the next replica, as a Service would. No keep-alive: a replica shutting down
    refuses new connections instead of racing a reused one. With ``resend_resets`` a connection
    closed before any answer is also sent elsewhere (a load balancer's retry on reset); tests
    then check in the access logs that the closing replica never served such a request."""
    result = LoadResult()
    turn = itertools.cycle(range(len(urls)))
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {personal_token}"}
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def one() -> None:
            async with gate:
                start = next(turn)
                for hop in range(len(urls) * 3):
                    url = urls[(start + hop) % len(urls)]
                    try:
                        r = await client.post(f"{url}/v1/chat/completions", json=CHAT)
                    except httpx.ConnectError:
                        continue
                    except httpx.HTTPError as exc:
                        result.broken.append(f"{url}: {exc!r}")
                        if resend_resets and isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
                            result.resent += 1
                            continue
                        return
                    result.statuses[r.status_code] = result.statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        result.ok.setdefault(url, []).append(time.monotonic())
                    return
                result.broken.append("no replica accepted the connection")

        await asyncio.gather(*(one() for _ in range(total)))
    return result


def access_log_successes(log_path: Path) -> int:
    """Chat requests answered 200 according to a proxy's JSON access log."""
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("path") == "/v1/chat/completions" and entry.get("status") == 200:
            count += 1
    return count
