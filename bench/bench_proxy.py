"""Proxy overhead: the fake Augment upstream direct vs through the proxy, measured in one run.

Both targets are real processes on this machine: ``tokenpool.dev.fake_upstream`` and the proxy
served exactly like ``tokenpool proxy`` (uvicorn + uvloop + httptools, access log on), with a
pre-filled route index instead of the Kubernetes watch (the watch is off the request path).
Load comes from ``wrk`` (native; installed by hack/install-bench-tools.sh).

* sequential (wrk -c1): p50/p99 of a small non-streaming answer, added latency = proxy - direct
* c=32 (wrk -c32): requests/second, ratio = proxy / direct
* streaming 500 chunks: time to first chunk and to the end, median of sequential requests
* streaming an agent's tool calls (250 calls: 500 upstream lines, each call a start node and a
  tool-use node) next to it, in the OpenAI and the Anthropic dialect: the added relay time per
  upstream line and the proxy's CPU per stream, and their ratio to text streaming
* ``--profile``: py-spy samples the proxy during a c=32 run and prints where the time goes

    .venv/bin/python -m bench.bench_proxy [--seconds 10] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
PT = "b" * 64
UPSTREAM_TOKEN = "u" * 64
AUGMENT_BODY = json.dumps({"message": "hi", "chat_history": [], "mode": "CHAT"})
OPENAI_BODY = json.dumps({"model": "augment-chat", "messages": [{"role": "user", "content": "hi"}]})
AUGMENT_HEADERS = {
    "Content-Type": "application/json",
    "Authorization": f"Bearer {UPSTREAM_TOKEN}",
    "x-api-version": "2",
    "x-request-id": "bench",
    "x-request-session-id": "bench",
    "User-Agent": "bench",
}
OPENAI_HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {PT}"}
ANTHROPIC_HEADERS = {"Content-Type": "application/json", "x-api-key": PT, "anthropic-version": "2023-06-01"}
# An agent turn of many tool calls (the fake upstream calls every tool the prompt names).
STREAM_LINES = 500
TOOL_PROMPT = " ".join(
    f'call read_file {{"path": "src/app/module_{i:03d}.py"}}' for i in range(STREAM_LINES // 2)
)
STREAM_BODIES = {
    "augment text": AUGMENT_BODY,
    "augment tools": json.dumps(
        {
            "message": TOOL_PROMPT,
            "chat_history": [],
            "mode": "AGENT",
            "tool_definitions": [{"name": "read_file", "description": "", "input_schema_json": "{}"}],
        }
    ),
    "openai text": json.dumps({**json.loads(OPENAI_BODY), "stream": True}),
    "openai tools": json.dumps(
        {
            "model": "augment-chat",
            "stream": True,
            "messages": [{"role": "user", "content": TOOL_PROMPT}],
            "tools": [
                {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
            ],
        }
    ),
    "anthropic text": json.dumps(
        {
            "model": "augment-chat",
            "max_tokens": 4096,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    ),
    "anthropic tools": json.dumps(
        {
            "model": "augment-chat",
            "max_tokens": 4096,
            "stream": True,
            "messages": [{"role": "user", "content": TOOL_PROMPT}],
            "tools": [{"name": "read_file", "input_schema": {"type": "object"}}],
        }
    ),
}


def free_port() -> int:
    from tokenpool.dev.controlplane import free_port as fp

    return fp()


# -- the proxy under test ---------------------------------------------------------------------
def serve_proxy(fake_url: str, port: int) -> None:
    """Child process: the proxy app with one user and one token on the fake upstream."""
    from tokenpool_proxy.app import create_app
    from tokenpool_proxy.index import RouteIndex
    from tokenpool_proxy.main import serve
    from tokenpool_proxy.settings import ProxySettings

    from tests.support.proxy_routes import upstream_route, user_route
    from tokenpool import log_format

    settings = ProxySettings(
        host="127.0.0.1", port=port, ops_port=0
    )  # one port: the bench measures the relay
    log_format.configure(settings.log_format, settings.log_level)
    index = RouteIndex()
    # maxConcurrency high: the benchmark measures the relay, not the per-token cap.
    index.replace_upstreams(
        [("t", upstream_route("t1", fake_url + "t1/", token=UPSTREAM_TOKEN, maxConcurrency=1000))]
    )
    index.replace_users([("u", user_route("bench", PT, ["t1"]))])
    serve(create_app(settings, index=index), settings)


# -- wrk ---------------------------------------------------------------------------------------
def lua(path: Path, body: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    result["non2xx"] = float(bad.group(1)) if bad else 0.0
    if errors:
        print(f"  wrk: {errors.group(0)}", file=sys.stderr)
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(
    pids: dict[str, int], url: str, script: Path, connections: int, seconds: float
) -> dict[str, float]:
    """A wrk run plus the CPU microseconds per request each process in ``pids`` spent: unlike
    latency, this barely moves when other work shares the machine."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = wrk(url, script, connections, seconds)
    for name, pid in pids.items():
        result[f"cpu_us_{name}"] = (cpu_seconds(pid) - before[name]) / result["requests"] * 1e6
    return result


# -- streaming ---------------------------------------------------------------------------------
async def stream_times(
    url: str, body: str, headers: dict[str, str], n: int, cpu_pid: int | None = None
) -> tuple[float, float, float]:
    """Median (time to first body byte, time to end) in ms over ``n`` sequential requests, and
    the CPU microseconds ``cpu_pid`` spent per request meanwhile (0 without a pid)."""
    first, total = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(n + 3):
            if i == 3 and cpu_pid is not None:
                cpu_before = cpu_seconds(cpu_pid)
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                await resp.content.readany()
                t_first = time.perf_counter()
                await resp.read()
                t_end = time.perf_counter()
            if i >= 3:  # warm-up
                first.append((t_first - start) * 1000)
                total.append((t_end - start) * 1000)
    cpu = (cpu_seconds(cpu_pid) - cpu_before) / n * 1e6 if cpu_pid is not None else 0.0
    return statistics.median(first), statistics.median(total), cpu


# -- profile -----------------------------------------------------------------------------------
def summarise_profile(raw: Path, top: int = 12) -> list[tuple[str, float]]:
    """Self time per function from py-spy's collapsed stacks, as a share of all samples."""
    self_time: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        self_time[re.sub(r"\s*\(/.*/(site-packages|lib/python3\.\d+|work/main)/", " (", leaf)] += int(count)
        total += int(count)
    return [(name, n / total) for name, n in self_time.most_common(top)] if total else []


def bucket_profile(raw: Path) -> dict[str, float]:
    """Share of samples by layer, from the innermost recognisable frame of each stack."""
    layers = [
        ("proxy code (tokenpool_proxy)", "tokenpool_proxy/"),
        ("usage accounting", "tokenpool_proxy/usage/"),
        ("aiohttp client", "aiohttp/"),
        ("FastAPI/Starlette", ("fastapi/", "starlette/")),
        ("uvicorn/httptools", ("uvicorn/", "httptools")),
        ("pydantic", "pydantic"),
        ("logging", "logging/"),
        ("prometheus_client", "prometheus_client/"),
        ("asyncio/uvloop", ("asyncio/", "uvloop")),
    ]
    shares: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        label = "other"
        for frame in reversed(stack.split(";")):
            hit = next((name for name, pat in reversed(layers) if any(p in frame for p in _tuple(pat))), None)
            if hit:
                label = hit
                break
        shares[label] += int(count)
    return {k: v / total for k, v in shares.most_common()} if total else {}


def _tuple(p: str | tuple[str, ...]) -> tuple[str, ...]:
    return (p,) if isinstance(p, str) else p


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each wrk run")
    parser.add_argument("--stream-requests", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="py-spy the proxy during a c=32 run")
    parser.add_argument("--serve-proxy", nargs=2, metavar=("FAKE_URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        serve_proxy(args.serve_proxy[0], int(args.serve_proxy[1]))
        return
    if not shutil.which("wrk"):
        subprocess.run(["bash", str(REPO / "hack/install-bench-tools.sh")], check=True)

    from tests.support.proxy_fixtures import FakeUpstream
    from tests.support.waiting import wait_for

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    fake = FakeUpstream(tmp, extra_args=["--no-record"])
    port = free_port()
    proxy_log = (tmp / "proxy.log").open("wb")
    proxy = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_proxy", "--serve-proxy", fake.url, str(port)],
        cwd=REPO,
        stdout=proxy_log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    proxy_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(f"{proxy_url}/readyz"), timeout=30, what="bench proxy ready")
        direct = (fake.tenant("t1") + "chat-stream", lua(tmp / "direct.lua", AUGMENT_BODY, AUGMENT_HEADERS))
        proxied = (f"{proxy_url}/v1/chat/completions", lua(tmp / "proxy.lua", OPENAI_BODY, OPENAI_HEADERS))
        fake.configure(text="Hello from the fake Augment upstream.", chunks=3)
        for url, script in (direct, proxied):
            wrk(url, script, 8, 2)  # warm-up: connections, caches, JIT-free but allocator-warm
        print(f"proxy overhead benchmark ({args.seconds:.0f}s per wrk run, 1 wrk thread)")
        seq_d, seq_p = wrk(*direct, 1, args.seconds), wrk(*proxied, 1, args.seconds)
        pids = {"fake": fake.process.pid, "proxy": proxy.pid}
        c32_d, c32_p = wrk_cpu(pids, *direct, 32, args.seconds), wrk_cpu(pids, *proxied, 32, args.seconds)
        fake.configure(text="x" * 2000, chunks=STREAM_LINES, stream_writes=True)
        streams = measure_streams(direct[0], proxy_url, proxy.pid, args.stream_requests)
        s_d, s_p = streams["augment text"], streams["openai text"]
        rows = [
            (
                "sequential p50 (ms)",
                seq_d["p50_ms"],
                seq_p["p50_ms"],
                f"added {seq_p['p50_ms'] - seq_d['p50_ms']:.3f} ms (target <= 1)",
            ),
            (
                "sequential p99 (ms)",
                seq_d["p99_ms"],
                seq_p["p99_ms"],
                f"added {seq_p['p99_ms'] - seq_d['p99_ms']:.3f} ms (target <= 3)",
            ),
            (
                "c=32 requests/s",
                c32_d["rps"],
                c32_p["rps"],
                f"ratio {c32_p['rps'] / c32_d['rps']:.2f} (target >= 0.5)",
            ),
            ("c=32 CPU us/request: fake upstream", c32_d["cpu_us_fake"], c32_p["cpu_us_fake"], ""),
            ("c=32 CPU us/request: proxy", 0.0, c32_p["cpu_us_proxy"], "the proxy's own cost"),
            (
                "stream 500 chunks: first chunk (ms)",
                s_d[0],
                s_p[0],
                f"added {s_p[0] - s_d[0]:.3f} ms (target <= 2)",
            ),
            (
                "stream 500 chunks: whole answer (ms)",
                s_d[1],
                s_p[1],
                f"added {s_p[1] - s_d[1]:.3f} ms (relay)",
            ),
        ]
        print(f"{'':40} {'direct':>10} {'proxy':>10}")
        for name, d, p, note in rows:
            print(f"{name:40} {d:10.3f} {p:10.3f}   {note}")
        bad = seq_p["non2xx"] + c32_p["non2xx"]
        print(f"non-2xx answers through the proxy: {bad:.0f}")
        print_streams(streams)
        if args.profile:
            fake.configure(text="Hello from the fake Augment upstream.", chunks=3, stream_writes=False)
            profile(proxy.pid, proxied, args.seconds, tmp)
    finally:
        proxy.terminate()
        proxy.wait(10)
        fake.stop()
        proxy_log.close()


def measure_streams(
    augment_url: str, proxy_url: str, proxy_pid: int, n: int
) -> dict[str, tuple[float, float, float]]:
    """Every stream of STREAM_BODIES: direct to the fake (augment) or through the proxy."""
    urls = {
        "augment": augment_url,
        "openai": f"{proxy_url}/v1/chat/completions",
        "anthropic": f"{proxy_url}/v1/messages",
    }
    headers = {"augment": AUGMENT_HEADERS, "openai": OPENAI_HEADERS, "anthropic": ANTHROPIC_HEADERS}
    out = {}
    for name, body in STREAM_BODIES.items():
        dialect = name.split()[0]
        pid = None if dialect == "augment" else proxy_pid
        out[name] = asyncio.run(stream_times(urls[dialect], body, headers[dialect], n, pid))
    return out


def print_streams(streams: dict[str, tuple[float, float, float]]) -> None:
    """Tool-call streams next to text streams: added time per upstream line, proxy CPU per stream."""
    print(f"\nstreams of {STREAM_LINES} upstream lines (text: 500 chunks; tools: 250 calls), medians:")
    print(
        f"{'':28} {'first (ms)':>10} {'whole (ms)':>10} {'added/line (us)':>16} {'proxy CPU/stream (ms)':>22}"
    )
    added: dict[str, float] = {}
    for name, (first, whole, cpu) in streams.items():
        base = streams["augment " + name.split()[1]][1]
        line = "" if name.startswith("augment") else f"{(whole - base) / STREAM_LINES * 1000:16.1f}"
        if not name.startswith("augment"):
            added[name] = (whole - base) / STREAM_LINES
        print(f"{name:28} {first:10.3f} {whole:10.3f} {line:>16} {cpu / 1000 if cpu else 0:22.2f}")
    for dialect in ("openai", "anthropic"):
        text, tools = streams[f"{dialect} text"], streams[f"{dialect} tools"]
        print(
            f"{dialect}: tool-call stream / text stream: relay time per line "
            f"{added[f'{dialect} tools'] / max(added[f'{dialect} text'], 1e-9):.2f}x, "
            f"proxy CPU per stream {tools[2] / max(text[2], 1e-9):.2f}x"
        )


def profile(pid: int, target: tuple[str, Path], seconds: float, tmp: Path) -> None:
    raw = tmp / "proxy.collapsed"
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--duration",
            str(int(seconds)),
            "--rate",
            "500",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wrk(*target, 32, seconds)
    spy.wait(seconds + 30)
    print(f"\nprofile of the proxy under c=32 (py-spy, {raw}):")
    for name, share in bucket_profile(raw).items():
        print(f"  {share:6.1%}  {name}")
    print("  top self time:")
    for name, share in summarise_profile(raw):
        print(f"  {share:6.1%}  {name}")


def _ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
