"""Access lines never block the event loop: written by a thread, in order, complete; a blocked
output costs dropped (and counted) lines, never a stalled request."""

from __future__ import annotations

import os
import threading
import time

import orjson
from tokenpool_proxy.access_log import DROPPED, AccessLog
from tokenpool_proxy.edge import access_writer
from tokenpool_proxy.settings import ProxySettings


def test_a_blocked_output_never_blocks_the_writer_and_loses_only_counted_lines() -> None:
    read_fd, write_fd = os.pipe()  # nobody reads yet: the pipe fills at 64 KiB
    out = os.fdopen(write_fd, "wb")
    write = access_writer(ProxySettings(), out=out)
    assert write is not None
    done = threading.Event()

    def many() -> None:
        for i in range(20_000):  # ~3 MB of lines, far more than the pipe holds
            write({"request_id": f"r{i}", "path": "/v1/chat/completions", "status": 200})
        done.set()

    writer = threading.Thread(target=many, daemon=True)
    started = time.monotonic()
    writer.start()
    assert done.wait(10), "writing access lines blocked on the full pipe"
    print(f"20,000 lines queued in {time.monotonic() - started:.3f}s with the output blocked")
    received = bytearray()
    reader = threading.Thread(target=lambda: _read_all(read_fd, received), daemon=True)
    reader.start()
    time.sleep(0.3)  # the writer thread drains into the now-read pipe (no assertion on timing)
    out.close()
    reader.join(10)
    lines = [orjson.loads(line) for line in bytes(received).splitlines()]
    ids = [int(x["request_id"][1:]) for x in lines if "request_id" in x]
    assert ids == sorted(ids) and ids[0] == 0, "lines out of order or the first ones lost"
    assert len(ids) == len(set(ids))


def test_lines_are_written_in_batches_and_at_close() -> None:
    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb")
    log = AccessLog(out, flush_s=0.01)
    for i in range(100):
        log.write(b'{"n":%d}\n' % i)
    log.close()
    out.close()
    received = bytearray()
    _read_all(read_fd, received)
    assert [orjson.loads(x)["n"] for x in bytes(received).splitlines()] == list(range(100))


def test_dropped_lines_are_reported_once_the_output_moves() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    filler = 0
    try:
        while True:  # fill the pipe: the log's first write will block
            filler += os.write(write_fd, b" " * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_fd, True)
    out = os.fdopen(write_fd, "wb")
    log = AccessLog(out, flush_s=0.01, max_bytes=1000)
    for i in range(50):  # the first batch blocks the thread in its write
        log.write(b'{"n":%d}\n' % i)
    time.sleep(0.2)  # (the thread takes that batch; not a synchronisation the test relies on)
    for i in range(50, 500):  # these pile up behind it, past max_bytes
        log.write(b'{"n":%d}\n' % i)
    received = bytearray()
    reader = threading.Thread(target=lambda: _read_all(read_fd, received), daemon=True)
    reader.start()
    log.close()
    out.close()
    reader.join(10)
    lines = [orjson.loads(x) for x in bytes(received)[filler:].split(b"\n") if x.strip()]
    notes = [x for x in lines if x.get("msg") == DROPPED]
    kept = [x["n"] for x in lines if "n" in x]
    assert len(notes) == 1 and notes[0]["dropped"] == 500 - len(kept) > 0
    assert kept == sorted(kept) and kept[:50] == list(range(50))


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 1 << 16):
        into += chunk
    os.close(fd)
