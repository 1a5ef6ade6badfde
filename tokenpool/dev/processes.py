"""Child processes that never outlive the Python process that started them.

Each server runs in its own process group (so stopping it also stops anything it forked) with its
output in a log file. Stopping is SIGTERM to the group, then SIGKILL after a grace period.
Cleanup runs on normal exit (atexit) and on SIGINT/SIGTERM, after which the previous handler runs,
so an interrupted pytest or `tokenpool dev` still exits as interrupted. As a last resort for a
parent killed with SIGKILL, children started from the main thread get PR_SET_PDEATHSIG (Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
_cleanups: list[Callable[[], None]] = []
_installed = False
_lock = threading.Lock()


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGKILL the child when its parent thread dies.

    The signal is tied to the thread that forked, so it is only used from the main thread (whose
    end is the process's end); elsewhere atexit and the signal handlers are the cleanup.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


class ManagedProcess:
    """A server process in its own process group with stdout+stderr in ``log_path``."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_pdeathsig(),  # only prctl: safe between fork and exec
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; reap the leader."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        # Anything the leader forked into its group goes too, even when the leader exited first.
        _signal_group(self.popen.pid, signal.SIGKILL)

    def log_tail(self, lines: int) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def register_cleanup(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at interpreter exit and on SIGINT/SIGTERM (installed once, main thread only)."""
    global _installed
    with _lock:
        _cleanups.append(cleanup)
        if _installed:
            return
        _installed = True
    atexit.register(run_cleanups)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            _chain(sig)


def unregister_cleanup(cleanup: Callable[[], None]) -> None:
    with _lock:
        if cleanup in _cleanups:
            _cleanups.remove(cleanup)


def run_cleanups() -> None:
    """Run (once) every registered cleanup, newest first; one failing does not stop the others."""
    while True:
        with _lock:
            if not _cleanups:
                return
            cleanup = _cleanups.pop()
        try:
            cleanup()
        except Exception:  # noqa: S112 - best effort while exiting; the rest must still run
            continue


def _chain(sig: signal.Signals) -> None:
    previous = signal.getsignal(sig)

    def handler(signum: int, frame: FrameType | None) -> None:
        run_cleanups()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            # Die of the same signal, as without this handler (exit status says "killed by").
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    signal.signal(sig, handler)
