"""Open streams: N concurrent chat streams through one proxy replica, each open for a minute.

A stream upstream (:mod:`bench.stream_peers`) sends one line every 50 ms on every stream for
``--seconds``; a client opens N streaming chat completions through the proxy (served exactly
as ``tokenpool proxy`` serves, access log and usage accounting on, with a pre-filled route
index: 100 users over 20 upstream tokens) and measures, for every chunk, the time from the
upstream's write to its arrival. The baseline of the same run is the same client reading the
same upstream directly, at the same N. For N in ``--levels``:

* per-chunk latency p50/p99 through the proxy and direct; added = proxy - direct;
* proxy CPU (share of one core, over the window in which all N streams are open) and the CPU
  per relayed chunk;
* proxy RSS per open stream: (RSS with N open - RSS before) / N;
* streams that failed or were refused.

    .venv/bin/python -m bench.bench_streams [--levels 500,1000,2000,4000] [--seconds 60]
        [--nofile N] [--profile LEVEL]

``--nofile`` starts the proxy with that soft limit on open files (as a container's default may
be); ``--profile N`` samples the proxy with py-spy during level N and prints the top functions.
Run time: about 2 x (seconds + 15) per level, ~10 minutes at the defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.bench_proxy import REPO, bucket_profile, cpu_seconds, summarise_profile
from bench.bench_status_scale import rss_mb
from tokenpool.dev.controlplane import free_port

USERS, TOKENS = 100, 20


def token_of(i: int) -> str:
    """User ``i``'s personal token."""
    return hashlib.sha256(f"stream-user-{i}".encode()).hexdigest()


def serve_proxy(upstream_url: str, port: int) -> None:
    """Child process: the proxy app over a pre-filled index (no API server)."""
    from tokenpool_proxy.app import create_app
    from tokenpool_proxy.index import RouteIndex
    from tokenpool_proxy.main import serve
    from tokenpool_proxy.settings import ProxySettings

    from tests.support.proxy_routes import upstream_route, user_route
    from tokenpool import log_format

    settings = ProxySettings(host="127.0.0.1", port=port, ops_port=0)  # /readyz on the same port
    log_format.configure(settings.log_format, settings.log_level)
    index = RouteIndex()
    names = [f"tok-{j}" for j in range(TOKENS)]
    index.replace_upstreams(
        [
            (n, upstream_route(n, upstream_url, token=f"{j:064x}", maxConcurrency=10_000))
            for j, n in enumerate(names)
        ]
    )
    index.replace_users([(f"u{i}", user_route(f"user-{i}", token_of(i), names)) for i in range(USERS)])
    serve(create_app(settings, index=index), settings)


def start(argv: list[str], log: Path, nofile: int = 0, tree: Path = REPO) -> subprocess.Popen[bytes]:
    """A child process running ``tree``'s code (not the installed one), with ``nofile`` as its
    soft limit on open files when given."""

    def limit() -> None:
        if nofile:
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
            )

    env = {**os.environ, "PYTHONPATH": f"{tree}/proxy:{tree}"}
    out = log.open("wb")
    return subprocess.Popen(argv, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit)


def system_seconds(pid: int) -> float:
    """Kernel-mode CPU time of a process so far (Linux /proc): socket reads and writes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def run(
    n: int, port: int, via: bool, proxy_pid: int, args: argparse.Namespace, profile_to: Path | None = None
) -> dict[str, float]:
    """One client of ``n`` streams against ``port``; the client's figures plus the proxy's CPU
    (share of a core, and kernel part) over the window in which all streams are open, and its
    RSS in the middle of it."""
    ramp = min(500.0, max(100.0, n / 8))
    argv = [sys.executable, "-m", "bench.stream_peers", "client", "--port", str(port), "--streams", str(n)]
    argv += ["--seconds", str(args.seconds), "--every-ms", str(args.every_ms), "--ramp-per-s", str(ramp)]
    if via:
        argv += ["--via-proxy", "--tokens", ",".join(token_of(i) for i in range(USERS))]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    client = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, env=env)
    window_start, window_end = n / ramp + 2, args.seconds - 2
    time.sleep(window_start)
    cpu0, sys0, t0 = cpu_seconds(proxy_pid), system_seconds(proxy_pid), time.monotonic()
    spy = None
    if profile_to is not None:
        spy_argv = [str(REPO / ".venv/bin/py-spy"), "record", "--pid", str(proxy_pid), "--duration", "20"]
        spy_argv += ["--format", "raw", "--output", str(profile_to), "--rate", "200", "--nonblocking"]
        spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(max(1.0, (window_end - window_start) / 2))
    rss_mid = rss_mb(proxy_pid)
    time.sleep(max(1.0, window_end - window_start - (time.monotonic() - t0)))
    elapsed = time.monotonic() - t0
    cpu = (cpu_seconds(proxy_pid) - cpu0) / elapsed
    system = (system_seconds(proxy_pid) - sys0) / elapsed
    result = json.loads(client.communicate()[0].decode().strip().splitlines()[-1])
    if spy is not None:
        spy.wait()
    # Chunks relayed per second in the window (as the client received them): when the proxy
    # falls behind it relays fewer than the upstream sends.
    chunks_per_s = result["samples"] / result["window_s"] if result["samples"] else n * 1000 / args.every_ms
    result.update(
        proxy_cpu=cpu,
        cpu_us_per_chunk=cpu / chunks_per_s * 1e6,
        system_us_per_chunk=system / chunks_per_s * 1e6,
        rss_mb=rss_mid,
    )
    time.sleep(3)  # the streams' sockets close
    return result


def level(
    n: int,
    args: argparse.Namespace,
    ports: dict[str, int],
    proxy: subprocess.Popen[bytes],
    idle_rss: float,
    logs: Path,
) -> dict[str, object]:
    out: dict[str, object] = {"streams": n}
    for target in ("direct", "proxy"):
        via = target == "proxy"
        profile_to = logs / f"profile-{n}.txt" if via and args.profile == n else None
        result = run(n, ports[target if via else "upstream"], via, proxy.pid, args, profile_to)
        out[target] = result
        if via:
            out.update(
                {k: result[k] for k in ("proxy_cpu", "cpu_us_per_chunk", "system_us_per_chunk", "rss_mb")}
            )
            out["rss_kb_per_stream"] = (result["rss_mb"] - idle_rss) * 1024 / n
        print(f"[{target} x{n}] {json.dumps(result)}", flush=True)
    return out


def ab(args: argparse.Namespace, logs: Path, up_url: str) -> None:
    """CPU per relayed chunk of a git revision's proxy and the working tree's, alternating rounds
    of ``--ab-streams`` streams (a change of a few percent shows in the medians)."""
    from bench.ab_proxy import export

    procs = {}
    for name, tree in (("base", export(args.ab, logs / "base")), ("work", REPO)):
        port = free_port()
        log = logs / f"proxy-{name}.log"
        argv = [sys.executable, "-m", "bench.bench_streams", "--serve-proxy", up_url, str(port)]
        procs[name] = (start(argv, log, tree=tree), port)
        wait(f"http://127.0.0.1:{port}/readyz", procs[name][0], log)
    per_chunk: dict[str, list[float]] = {name: [] for name in procs}
    idle = {name: rss_mb(proc.pid) for name, (proc, _) in procs.items()}
    per_stream: dict[str, float] = {}
    try:
        for r in range(args.rounds):
            for name in sorted(procs, reverse=bool(r % 2)):
                proc, port = procs[name]
                result = run(args.ab_streams, port, True, proc.pid, args)
                per_chunk[name].append(result["cpu_us_per_chunk"])
                per_stream.setdefault(name, (result["rss_mb"] - idle[name]) * 1024 / args.ab_streams)
                us, p99 = result["cpu_us_per_chunk"], result["p99_ms"]
                print(f"  round {r} {name}: {us:.1f} us/chunk, p99 {p99} ms", flush=True)
        print(f"proxy CPU us per relayed chunk, {args.ab_streams} streams, {args.ab} vs working tree:")
        for name, values in per_chunk.items():
            rounds = " ".join(f"{v:.1f}" for v in values)
            print(f"  {name:5} median {statistics.median(values):6.1f}   rounds: {rounds}")
        print("proxy RSS growth per open stream (first round, mid-stream, from the idle proxy):")
        for name, kb in per_stream.items():
            print(f"  {name:5} {kb:6.1f} KB")
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


def report(rows: list[dict[str, object]]) -> None:
    print(
        "\nstreams  direct p50/p99 ms  proxy p50/p99 ms  added p50/p99 ms  proxy CPU  us/chunk (sys)"
        "  KB RSS/stream  failed"
    )
    for r in rows:
        d, p = r["direct"], r["proxy"]
        assert isinstance(d, dict) and isinstance(p, dict)
        print(
            f"{r['streams']:7}  {d['p50_ms']:7.2f} / {d['p99_ms']:6.2f}"
            f"  {p['p50_ms']:7.2f} / {p['p99_ms']:6.2f}"
            f"  {p['p50_ms'] - d['p50_ms']:7.2f} / {p['p99_ms'] - d['p99_ms']:6.2f}"
            f"  {r['proxy_cpu']:8.0%}  {r['cpu_us_per_chunk']:6.1f} ({r['system_us_per_chunk']:4.1f})"
            f"  {r['rss_kb_per_stream']:13.1f}"
            f"  {p['failed'] + p['bad_status']} of {p['streams']} (direct {d['failed']})"
        )


def show_profile(raw: Path) -> None:
    """Where the proxy's time goes: by layer, by function (self), and inclusive for the frames
    a relayed chunk passes through."""
    print(f"\nprofile of the proxy (py-spy, {raw}):")
    for name, share in bucket_profile(raw).items():
        print(f"  {share:6.1%}  {name}")
    print("  top self time:")
    for name, share in summarise_profile(raw, top=20):
        print(f"  {share:6.1%}  {name}")
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            total += int(count)
            for frame in {f.split(" (")[0] for f in stack.split(";")}:
                inclusive[frame] += int(count)
    print("  inclusive:")
    for name, n in inclusive.most_common(30):
        print(f"  {n / total:6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="500,1000,2000,4000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every-ms", type=float, default=50)
    parser.add_argument("--nofile", type=int, default=0)
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument(
        "--ab", default="", metavar="REV", help="A/B of CPU per chunk: REV vs the working tree"
    )
    parser.add_argument("--ab-streams", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--serve-proxy", nargs=2, metavar=("UPSTREAM_URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_proxy:
        serve_proxy(args.serve_proxy[0], int(args.serve_proxy[1]))
        return
    logs = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    ports = {"upstream": free_port(), "proxy": free_port()}
    print(f"load average {os.getloadavg()[0]:.2f}; logs {logs}", flush=True)
    up_argv = [sys.executable, "-m", "bench.stream_peers", "upstream", "--port", str(ports["upstream"])]
    upstream = start(
        [*up_argv, "--seconds", str(args.seconds), "--every-ms", str(args.every_ms)], logs / "up.log"
    )
    up_url = f"http://127.0.0.1:{ports['upstream']}/"
    procs = [upstream]
    try:
        if args.ab:
            ab(args, logs, up_url)
            return
        proxy_log = logs / "proxy.log"
        proxy = start(
            [sys.executable, "-m", "bench.bench_streams", "--serve-proxy", up_url, str(ports["proxy"])],
            proxy_log,
            args.nofile,
        )
        procs.append(proxy)
        wait(f"http://127.0.0.1:{ports['proxy']}/readyz", proxy, proxy_log)
        idle_rss = rss_mb(proxy.pid)
        rows = [level(int(n), args, ports, proxy, idle_rss, logs) for n in args.levels.split(",")]
        report(rows)
        print(f"load average at the end {os.getloadavg()[0]:.2f}; proxy RSS idle {idle_rss:.0f} MB")
        if args.profile:
            show_profile(logs / f"profile-{args.profile}.txt")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
