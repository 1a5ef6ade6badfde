"""The processes of one `tokenpool dev` run and how it waits for them.

Every server is a :class:`ManagedProcess` (own process group, log file under ``<state>/logs``)
owned by a :class:`DevSession`, which stops them in reverse start order, the control plane last.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import typer
import yaml

from tokenpool.dev import binaries
from tokenpool.dev.controlplane import ControlPlane
from tokenpool.dev.processes import ManagedProcess

T = TypeVar("T")
REPO_ROOT = binaries.REPO_ROOT


def default_state_dir() -> Path:
    if (REPO_ROOT / ".git").exists():
        return REPO_ROOT / ".tokenpool" / "dev"
    return binaries.cache_dir() / "dev"


_STARTED = time.monotonic()


def echo(message: str) -> None:
    typer.echo(f"[tokenpool dev {time.monotonic() - _STARTED:5.1f}s] {message}", err=True)


def port_free(port: int) -> bool:
    """Whether a server could listen on the port (SO_REUSEADDR, as uvicorn: TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], T], timeout: float, children: list[ManagedProcess]) -> T:
    """Poll ``check()`` until truthy; fail early when a child died, with its log tail.

    A check that raises (an API server answering 5xx while busy starting) counts as "not yet";
    the last error is reported if time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # any failure of the check means "not ready yet"
            last_error = f" (last error: {exc})"
        for child in children:
            if not child.alive():
                raise DevError(f"{child.name} exited while waiting for {what}:\n{child.log_tail(30)}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.name} ({c.log_path}) ---\n{c.log_tail(15)}" for c in children)
            raise DevError(f"timed out after {timeout:g}s waiting for {what}{last_error}\n{tails}")
        time.sleep(0.2)  # polling child processes and the local proxy


class DevError(RuntimeError):
    """`tokenpool dev` cannot continue; the message says why."""


class DevSession:
    """Everything one `tokenpool dev` run starts, in start order (stopped in reverse)."""

    def __init__(self, state_dir: Path, namespace: str, port: int, timeout: float) -> None:
        self.state = state_dir
        self.logs = state_dir / "logs"
        self.namespace = namespace
        self.port = port
        self.console_port = 0
        self.ops_port = free_port()  # the proxy's /metrics, /healthz, /readyz
        self.timeout = timeout
        self.children: list[ManagedProcess] = []
        self.plane: ControlPlane | None = None
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        """One `tokenpool dev` per state directory: two would share one etcd data dir."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._lock = (self.state / "lock").open("a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DevError(
                f"another `tokenpool dev` is running with state {self.state}; stop it first"
            ) from exc
        for old in self.logs.glob("*.log"):  # logs of this run only
            old.unlink()

    def start_cluster(self, use_current: bool, kubeconfig: str | None) -> ControlPlane:
        from tokenpool.dev.build_progress import ensure_binaries

        t = time.monotonic()
        if use_current or kubeconfig:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
            try:
                plane = ControlPlane.from_kubeconfig(Path(path).expanduser())
            except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
                raise DevError(f"cannot use kubeconfig {path}: {exc}") from exc
            echo(f"using the cluster of {plane.kubeconfig}: {plane.server}")
        else:
            bin_dir = ensure_binaries(echo)
            echo("starting the embedded control plane (etcd + kube-apiserver) ...")
            plane = ControlPlane.launch(bin_dir, workdir=self.state / "controlplane")
            echo(f"control plane {plane.server} ready in {time.monotonic() - t:.1f}s")
        self.plane = plane
        return plane

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        child = ManagedProcess(name, argv, self.logs / f"{name}.log", env={**os.environ, **env})
        self.children.append(child)
        return child

    def stop(self) -> None:
        while self.children:
            self.children.pop().stop(5.0)
        if self.plane is not None and self.plane.embedded:
            self.plane.stop()
        self.plane = None


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
