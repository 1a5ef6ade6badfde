"""The upstream client's idle-gap timeout (upstream_client.py) against a real HTTP server: bytes
arriving in gaps shorter than ``read_timeout_seconds`` keep an answer going however long it
takes, silence for longer cuts it, and the timer is set once per answer, not once per chunk."""

from __future__ import annotations

import asyncio
import time

import pytest
from tokenpool_proxy.settings import ProxySettings
from tokenpool_proxy.upstream_client import IdleGapProtocol, upstream_session

GAP_S = 0.5
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _serve(lines: int, every_s: float, then: str) -> tuple[asyncio.Server, str]:
    """An upstream that sends ``lines`` lines ``every_s`` apart, then ends the answer
    (``then="end"``) or falls silent with the connection open (``"silence"``)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the request (no body)
        writer.write(HEAD)
        for i in range(lines):
            await asyncio.sleep(every_s)
            writer.write(_chunk(b'{"text":"%d"}\n' % i))
        if then == "end":
            writer.write(b"0\r\n\r\n")
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/chat-stream"


async def test_short_gaps_never_cut_an_answer_longer_than_the_gap_and_one_timer_serves_it():
    server, url = await _serve(lines=12, every_s=GAP_S / 5, then="end")  # 1.2 s in all
    session = upstream_session(ProxySettings(read_timeout_seconds=GAP_S))
    timers: list[object] = []  # kept alive, so no two share an id
    try:
        async with server, session, session.get(url) as resp:
            protocol = resp.connection.protocol if resp.connection else None
            assert isinstance(protocol, IdleGapProtocol)
            lines = []
            async for line in resp.content:
                lines.append(line)
                timer = protocol._read_timeout_handle
                if timer is not None and not any(t is timer for t in timers):
                    timers.append(timer)
    finally:
        server.close()
    assert len(lines) == 12
    # aiohttp's own protocol sets a new timer per read (12 here): this one is set again only
    # when it fires (every GAP_S), so a 1.2 s answer sees about three.
    print(f"timers seen over 12 chunks in 1.2 s: {len(timers)}")
    assert len(timers) <= 6


@pytest.mark.parametrize("lines", [0, 3], ids=["silent-after-the-head", "silent-mid-answer"])
async def test_silence_longer_than_the_gap_is_cut_at_the_gap(lines):
    server, url = await _serve(lines=lines, every_s=GAP_S / 5, then="silence")
    session = upstream_session(ProxySettings(read_timeout_seconds=GAP_S))
    got = []
    try:
        async with server, session, session.get(url) as resp:
            last = time.perf_counter()
            with pytest.raises(TimeoutError):
                async for line in resp.content:
                    got.append(line)
                    last = time.perf_counter()
            silent_for = time.perf_counter() - last
    finally:
        server.close()
    assert len(got) == lines
    print(f"cut after {silent_for:.3f} s of silence (gap {GAP_S} s)")
    # Never before the gap (the timer works in whole milliseconds); the upper bound is generous
    # for a loaded machine: the point is that it ends.
    assert GAP_S - 0.002 <= silent_for < GAP_S + 3


async def test_a_reader_slower_than_the_gap_is_not_the_upstreams_silence():
    """4 MiB at once, read with a pause longer than the gap: aiohttp pauses the socket once its
    buffer is full (and with it the clock), resumes it as the reader catches up, and every byte
    arrives."""
    block = b"x" * 65_535 + b"\n"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD + _chunk(block) * 64 + b"0\r\n\r\n")
        await reader.read()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    session = upstream_session(ProxySettings(read_timeout_seconds=GAP_S))
    try:
        async with server, session, session.get(url) as resp:
            protocol = resp.connection.protocol if resp.connection else None
            assert isinstance(protocol, IdleGapProtocol)
            got = len(await resp.content.readany())
            await asyncio.sleep(GAP_S * 1.6)
            assert protocol._reading_paused, "the buffer should be full by now: the test needs a pause"
            while data := await resp.content.readany():
                got += len(data)
    finally:
        server.close()
    assert got == len(block) * 64
