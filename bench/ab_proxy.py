"""A/B of the proxy's CPU per request: a git revision against the working tree, same machine, same run.

The end-to-end figures of ``bench_proxy`` move by ±10 % between runs on a shared 2-core machine,
more than most single optimisations. Here both proxies run side by side in front of one fake
upstream and take turns under the same ``wrk -c32`` load, so a few alternating rounds show a
change of a few percent::

    .venv/bin/python -m bench.ab_proxy [--rev HEAD~1] [--seconds 4] [--rounds 6] [--stream]

It prints the proxy CPU microseconds per request (user + system, from /proc) of every round and
the medians. ``--stream``: streamed answers of 500 text chunks (the relay) instead of small
whole answers.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench.bench_proxy import (
    OPENAI_BODY,
    OPENAI_HEADERS,
    REPO,
    STREAM_BODIES,
    STREAM_LINES,
    _ok,
    free_port,
    lua,
    wrk_cpu,
)


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` as plain files (``git archive``: no worktree, the repository untouched)."""
    data = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rev", default="HEAD", help="the baseline revision (default HEAD)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--stream", action="store_true", help="streamed 500-chunk answers")
    args = parser.parse_args()

    from tests.support.proxy_fixtures import FakeUpstream
    from tests.support.waiting import wait_for

    tmp = Path(tempfile.mkdtemp(prefix="ab-proxy-"))
    trees = {"base": export(args.rev, tmp / "base"), "work": REPO}
    fake = FakeUpstream(tmp, extra_args=["--no-record"])
    if args.stream:
        fake.configure(text="x" * 2000, chunks=STREAM_LINES)
    else:
        fake.configure(text="Hello from the fake Augment upstream.", chunks=3)
    procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for name, tree in trees.items():
            port = free_port()
            env = {**os.environ, "PYTHONPATH": f"{tree}/proxy:{tree}"}  # the tree's code, not the install
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.bench_proxy", "--serve-proxy", fake.url, str(port)],
                cwd=tree,
                stdout=(tmp / f"{name}.log").open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs[name] = (proc, f"http://127.0.0.1:{port}")
        for name, (_, url) in procs.items():
            ready = f"{url}/readyz"
            wait_for(lambda: _ok(ready), timeout=30, what=f"{name} proxy ready")  # noqa: B023 (called now)
        body = STREAM_BODIES["openai text"] if args.stream else OPENAI_BODY
        script = lua(tmp / "chat.lua", body, OPENAI_HEADERS)
        cpu: dict[str, list[float]] = {name: [] for name in procs}
        for r in range(args.rounds):
            order = list(procs.items()) if r % 2 == 0 else list(reversed(procs.items()))
            for name, (proc, url) in order:
                pids = {"fake": fake.process.pid, "proxy": proc.pid}
                out = wrk_cpu(pids, f"{url}/v1/chat/completions", script, 32, args.seconds)
                cpu[name].append(out["cpu_us_proxy"])
        what = "streamed 500-chunk answer" if args.stream else "request"
        print(f"proxy CPU us/{what} at c=32, {args.rev} vs working tree ({args.rounds} alternating rounds)")
        for name, values in cpu.items():
            rounds = " ".join(f"{v:.0f}" for v in values)
            print(f"  {name:5} median {statistics.median(values):6.0f}   rounds: {rounds}")
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)
        fake.stop()


if __name__ == "__main__":
    main()
