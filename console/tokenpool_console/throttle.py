"""Sliding-window limits for login failures and join requests, per client address and in total.

In memory, per console process (the console runs one replica; docs/console.md). Keys are client
addresses, never tokens.
"""

from __future__ import annotations

import time
from collections import deque

MAX_KEYS = 100_000


class Throttle:
    def __init__(self, per_key: int, total: int, window_s: float) -> None:
        self.per_key, self.total, self.window_s = per_key, total, window_s
        self._hits: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, hits: deque[float], now: float) -> None:
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: now)."""
        now = time.monotonic()
        self._trim(self._all, now)
        waits = [0.0]
        if len(self._all) >= self.total:
            waits.append(self._all[0] + self.window_s - now)
        hits = self._hits.get(key)
        if hits is not None:
            self._trim(hits, now)
            if len(hits) >= self.per_key:
                waits.append(hits[0] + self.window_s - now)
        return int(max(waits) + 0.999)

    def hit(self, key: str) -> None:
        now = time.monotonic()
        if key not in self._hits and len(self._hits) >= MAX_KEYS:
            self._prune(now)
        self._hits.setdefault(key, deque()).append(now)
        self._all.append(now)

    def _prune(self, now: float) -> None:
        for key in list(self._hits):
            self._trim(self._hits[key], now)
            if not self._hits[key]:
                del self._hits[key]
        while len(self._hits) >= MAX_KEYS:  # still full: forget the oldest entries
            del self._hits[next(iter(self._hits))]
