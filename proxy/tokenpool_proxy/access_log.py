"""Access lines written off the event loop.

A write to stdout blocks when the reader does not keep up (a full pipe, a slow log collector);
on the event loop that would stall every request and stream of the replica. Here the request
path only appends the line to a list; a thread writes what accumulated once per ``flush_s`` (one
write for many lines, in order). If the output stays blocked, lines beyond about ``max_bytes``
are dropped and counted, and a line saying how many is written once the output moves again: a
replica keeps serving rather than wait on its log.

Lines reach the output at most ``flush_s`` late; the last ones are written at exit.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import BinaryIO

import orjson

DROPPED = "access lines dropped: the log output was blocked"


class AccessLog:
    def __init__(self, out: BinaryIO, flush_s: float = 0.05, max_bytes: int = 8 << 20) -> None:
        self._out = out
        self._flush_s = flush_s
        self._max_bytes = max_bytes
        self._lines: list[bytes] = []
        self._bytes = 0  # about the size of _lines (updated without a lock: a bound, not a count)
        self._dropped = 0
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def write(self, line: bytes) -> None:
        """Queue one line (with its newline). Never blocks."""
        if self._bytes > self._max_bytes:
            self._dropped += 1
            return
        first = not self._lines
        self._lines.append(line)
        self._bytes += len(line)
        if first:
            self._wake.set()

    def close(self) -> None:
        """Write what is queued and stop the thread (at exit)."""
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            if not self._closed:
                time.sleep(self._flush_s)  # let a batch gather
            self._wake.clear()  # before taking the batch: a line queued after it wakes us again
            self._drain()
        self._drain()

    def _drain(self) -> None:
        # Swapping the list is atomic under the GIL: a line appended meanwhile lands in one of the
        # two lists, both of which get written.
        lines, self._lines = self._lines, []
        self._bytes = 0
        dropped, self._dropped = self._dropped, 0
        if dropped:
            note = {"ts": _now(), "level": "warning", "logger": "tokenpool.access", "msg": DROPPED}
            lines.append(orjson.dumps(note | {"dropped": dropped}) + b"\n")
        if lines:
            self._out.write(b"".join(lines))
            self._out.flush()


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
