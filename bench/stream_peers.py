"""The two ends of the open-streams benchmark, lean enough not to be what is measured.

* ``upstream``: an Augment-shaped ``chat-stream`` server that keeps every stream open for
  ``--seconds`` and sends one NDJSON line every ``--every-ms`` on each. One timer serves all
  streams (they are spread over ten phase slots), so thousands of streams cost one wake-up per
  slot, not one per stream. Each line's text is the monotonic send time, ``@<seconds>@``.
* ``client``: opens ``--streams`` streaming chat requests (OpenAI shape through the proxy, or
  the upstream's own shape directly), ramped at ``--ramp-per-s``, and for each line that arrives
  takes ``now - send time``: the chunk's latency. Both ends are raw asyncio protocols on uvloop
  (no HTTP library per chunk); CLOCK_MONOTONIC is the same clock in every process of a machine.

The client prints one JSON object: streams opened / completed / failed, chunks, and latency
percentiles over the window in which every stream was open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import resource
import time
from typing import Any

import uvloop

SLOTS = 10
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
_END = b'{"text":"","stop_reason":1}\n'
_STAMP = re.compile(rb"@(\d+\.\d+)@")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _line(now: float) -> bytes:
    return b'{"text":"@%.6f@","unknown_blob_names":[],"checkpoint_not_found":false}\n' % now


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- upstream ----------------------------------------------------------------------------------
class Upstream:
    def __init__(self, chunks: int, every_s: float) -> None:
        self.chunks = chunks
        self.every_s = every_s
        self.slots: list[dict[UpstreamConn, int]] = [{} for _ in range(SLOTS)]
        self.next_slot = 0

    def start(self, conn: UpstreamConn) -> None:
        conn.transport.write(_HEAD)
        self.slots[self.next_slot][conn] = 0
        self.next_slot = (self.next_slot + 1) % SLOTS

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.every_s / SLOTS
        at, slot = loop.time(), 0
        while True:
            at += step
            await asyncio.sleep(max(0.0, at - loop.time()))
            streams = self.slots[slot]
            slot = (slot + 1) % SLOTS
            line = _chunk(_line(time.monotonic()))
            done = []
            for conn, sent in streams.items():
                if conn.transport.is_closing():
                    done.append(conn)
                elif sent + 1 >= self.chunks:
                    conn.transport.write(line + _chunk(_END) + b"0\r\n\r\n")
                    done.append(conn)
                else:
                    conn.transport.write(line)
                    streams[conn] = sent + 1
            for conn in done:
                del streams[conn]
                conn.busy = False
                conn.feed(b"")  # a request that came early on the kept-alive connection


class UpstreamConn(asyncio.Protocol):
    def __init__(self, server: Upstream) -> None:
        self.server = server
        self.buffer = b""
        self.busy = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if self.busy:
            return
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        match = re.search(rb"(?i)content-length:\s*(\d+)", self.buffer[:head_end])
        end = head_end + 4 + (int(match.group(1)) if match else 0)
        if len(self.buffer) < end:
            return
        self.buffer = self.buffer[end:]
        self.busy = True
        self.server.start(self)


async def serve_upstream(port: int, seconds: float, every_ms: float) -> None:
    raise_nofile()
    server = Upstream(max(1, int(seconds * 1000 / every_ms)), every_ms / 1000)
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: UpstreamConn(server), "127.0.0.1", port, backlog=4096)
    print(f"stream upstream on {port}", flush=True)
    await server.tick()


# -- client ------------------------------------------------------------------------------------
class Latencies:
    """A histogram in 10 µs buckets up to 10 s: millions of samples in constant memory."""

    def __init__(self) -> None:
        self.buckets = [0] * 1_000_001
        self.count = 0

    def add(self, seconds: float) -> None:
        self.buckets[min(1_000_000, max(0, int(seconds * 100_000)))] += 1
        self.count += 1

    def percentile(self, p: float) -> float:
        target, seen = self.count * p, 0
        for i, n in enumerate(self.buckets):
            seen += n
            if n and seen >= target:
                return i / 100  # milliseconds
        return 0.0


class ClientConn(asyncio.Protocol):
    def __init__(self, run: ClientRun, request: bytes) -> None:
        self.run = run
        self.request = request
        self.tail = b""
        self.status_ok: bool | None = None
        self.chunks = 0
        self.done = False

    def connection_made(self, transport: Any) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self.status_ok is None:
            self.status_ok = data.startswith(b"HTTP/1.1 200")
        data = self.tail + data
        measuring = self.run.window_start <= now <= self.run.window_end
        last = 0
        for match in _STAMP.finditer(data):
            self.chunks += 1
            last = match.end()
            if measuring:
                self.run.latencies.add(now - float(match.group(1)))
        self.tail = data[last:][-64:]  # a stamp cut in two by the network
        if b"[DONE]" in data or data.endswith(b"0\r\n\r\n"):
            self.done = True
            self.run.finished(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.run.failed(self)


class ClientRun:
    def __init__(self, streams: int, seconds: float, ramp_s: float) -> None:
        start = time.monotonic()
        self.window_start = start + ramp_s + 2
        self.window_end = start + seconds - 2
        self.latencies = Latencies()
        self.left = streams
        self.completed = self.failures = 0
        self.all_done = asyncio.Event()
        self.chunks_seen: list[int] = []

    def finished(self, conn: ClientConn) -> None:
        self.completed += 1
        self._end(conn)

    def failed(self, conn: ClientConn) -> None:
        self.failures += 1
        self._end(conn)

    def _end(self, conn: ClientConn) -> None:
        self.chunks_seen.append(conn.chunks)
        conn.done = True
        self.left -= 1
        if self.left == 0:
            self.all_done.set()


def request_bytes(port: int, via_proxy: bool, token: str) -> bytes:
    if via_proxy:
        body = json.dumps(
            {"model": "augment-chat", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
        ).encode()
        path, auth = b"/v1/chat/completions", f"Authorization: Bearer {token}\r\n".encode()
    else:
        body, path, auth = b'{"message":"stream"}', b"/t/chat-stream", b""
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n%s"
        b"Content-Length: %d\r\n\r\n%s" % (path, port, auth, len(body), body)
    )


async def run_client(
    port: int,
    streams: int,
    seconds: float,
    every_ms: float,
    ramp_per_s: float,
    via_proxy: bool,
    tokens: list[str],
) -> None:
    raise_nofile()
    loop = asyncio.get_running_loop()
    ramp_s = streams / ramp_per_s
    run = ClientRun(streams, seconds, ramp_s)
    opened = 0
    conns: list[ClientConn] = []
    began = time.monotonic()
    for i in range(streams):
        due = began + i / ramp_per_s
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        conn = ClientConn(run, request_bytes(port, via_proxy, tokens[i % len(tokens)]))
        try:
            await loop.create_connection(lambda c=conn: c, "127.0.0.1", port)  # type: ignore[misc]
            opened += 1
            conns.append(conn)
        except OSError:
            run.failures += 1
            run.left -= 1
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.all_done.wait(), seconds + ramp_s + 60)
    lat = run.latencies
    expected = int(seconds * 1000 / every_ms)
    print(
        json.dumps(
            {
                "streams": streams,
                "opened": opened,
                "completed": run.completed,
                "failed": run.failures + sum(1 for c in conns if not c.done),
                "short": sum(1 for c in conns if c.done and c.chunks < expected),
                "bad_status": sum(1 for c in conns if c.status_ok is False),
                "chunks": sum(c.chunks for c in conns),
                "samples": lat.count,
                "p50_ms": lat.percentile(0.50),
                "p99_ms": lat.percentile(0.99),
                "max_ms": lat.percentile(1.0),
                "window_s": run.window_end - run.window_start,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("role", choices=["upstream", "client"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every-ms", type=float, default=50)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--ramp-per-s", type=float, default=400)
    parser.add_argument("--via-proxy", action="store_true")
    parser.add_argument("--tokens", default="", help="comma-separated personal tokens (via the proxy)")
    args = parser.parse_args()
    if args.role == "upstream":
        uvloop.run(serve_upstream(args.port, args.seconds, args.every_ms))
    else:
        tokens = args.tokens.split(",") if args.tokens else [""]
        uvloop.run(
            run_client(
                args.port, args.streams, args.seconds, args.every_ms, args.ramp_per_s, args.via_proxy, tokens
            )
        )


if __name__ == "__main__":
    main()
