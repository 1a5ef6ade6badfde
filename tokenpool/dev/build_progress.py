"""First-run build of the control-plane binaries, with a progress bar and a time estimate.

`hack/build-binaries.sh` compiles etcd, kube-apiserver and helm from source (15-25 minutes on
2 cores, once; cached under ~/.cache/tokenpool afterwards). It reports on stderr which binary it
builds and every 200 compiled packages; this module turns that into a bar so a newcomer sees
that something is happening and roughly how long it will take.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tokenpool.dev import binaries

# Per step: rough share of the total build time, and how many packages `go build -v` lists
# (`go list -deps` of kube-apiserver v1.37.2 and etcd v3.7.0: about 2070 and 570; helm is built by
# `go install` without per-package output). Only used to draw the bar, which never claims more
# than 99% before the script reports the binaries' directory.
STEPS = {"etcd": (0.15, 570), "kube-apiserver": (0.70, 2070), "helm": (0.15, 0)}
ESTIMATE = "15-25 minutes on 2 cores"
_BUILDING = re.compile(r"building (\S+)")
_PACKAGES = re.compile(r"(\S+): (\d+) packages compiled")
_BUILT = re.compile(r"built (\S+) in")


class Progress:
    """Fraction done, fed with the build script's stderr lines."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.current: str | None = None
        self.packages = 0

    def feed(self, line: str) -> None:
        if m := _BUILT.search(line):
            self.done.add(m.group(1))
            self.current, self.packages = None, 0
        elif m := _PACKAGES.search(line):
            self.packages = int(m.group(2))
        elif m := _BUILDING.search(line):
            self.current, self.packages = m.group(1), 0

    def fraction(self) -> float:
        total = sum(STEPS[s][0] for s in self.done if s in STEPS)
        if self.current in STEPS:
            share, packages = STEPS[self.current]
            total += share * min(self.packages / packages, 0.95) if packages else 0.0
        return min(total, 0.99)


def bar(fraction: float, elapsed: float, width: int = 30) -> str:
    filled = int(fraction * width)
    eta = ""
    if fraction > 0.05:
        eta = f", ~{max(elapsed / fraction - elapsed, 0) / 60:.0f} min left"
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% {elapsed / 60:.1f} min{eta}"


def build_running() -> int | None:
    """The pid of a build-binaries.sh already running on this machine (e.g. from `make test`)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"build-binaries.sh") for a in argv[:3]):
                return int(entry.name)
    return None


def _wait_for_other_build(pid: int, echo: Callable[[str], None]) -> Path:
    """Two builds into one cache entry would clobber each other: wait for the running one."""
    echo(f"a control-plane build is already running (pid {pid}); waiting for it (typically {ESTIMATE}) ...")
    started = time.monotonic()
    while Path(f"/proc/{pid}").exists():
        time.sleep(5)
        echo(f"still building ({(time.monotonic() - started) / 60:.1f} min) ...")
    return binaries.find()


def ensure_binaries(echo: Callable[[str], None]) -> Path:
    """The binaries' directory; builds them first if missing, drawing progress through ``echo``."""
    try:
        return binaries.find()
    except binaries.BinariesNotFound:
        pass
    if not binaries.BUILD_SCRIPT.exists():
        raise binaries.BinariesNotFound(
            "the control-plane binaries are missing and this is not a checkout that can build them; "
            "use an existing cluster with --use-current-context"
        )
    other = build_running()
    if other is not None:
        return _wait_for_other_build(other, echo)
    echo(f"Building etcd + kube-apiserver + helm from source (first run only; typically {ESTIMATE}).")
    echo(f"Cached afterwards under {binaries.cache_dir() / 'bin'}; an interrupted build resumes.")
    # Own session: Ctrl-C reaches us, and we stop the whole build (bash and go) on the way out.
    proc = subprocess.Popen(
        ["bash", str(binaries.BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        return _follow(proc, echo)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def _follow(proc: subprocess.Popen[str], echo: Callable[[str], None]) -> Path:
    assert proc.stderr is not None and proc.stdout is not None
    started = time.monotonic()
    progress = Progress()
    tty = sys.stderr.isatty()
    errors: list[str] = []
    for line in proc.stderr:
        progress.feed(line)
        if "ERROR" in line:
            errors.append(line.rstrip())
        status = bar(progress.fraction(), time.monotonic() - started)
        if tty:
            sys.stderr.write(f"\r{status}  {line.strip()[:60]:<60}")
            sys.stderr.flush()
        elif "packages compiled" not in line or progress.packages % 1000 == 0:
            echo(f"{status}  {line.strip()}")
    out = proc.stdout.read()
    if tty:
        sys.stderr.write("\n")
    if proc.wait() != 0:
        raise binaries.BinariesNotFound("building the binaries failed:\n" + "\n".join(errors[-10:]))
    echo(f"Binaries built in {(time.monotonic() - started) / 60:.1f} min.")
    return Path(out.strip().splitlines()[-1])
