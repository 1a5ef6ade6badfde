"""Operator fixtures: real ``tokenpool operator`` processes against the test control plane.

* ``operator_process(namespace, wait=True, **env) -> OperatorProcess``: a real
  ``.venv/bin/tokenpool operator`` with ``KUBECONFIG=control_plane.kubeconfig`` watching
  ``namespace``, started and waited for until its liveness endpoint answers. ``env`` keys are
  TOKENPOOL_OPERATOR_* settings without the prefix (``max_quota=5``). The handle has
  ``.stop()``, ``.restart()``, ``.log()``, ``.alive()``, ``.probe()`` (its live ``/healthz``
  answer with the work-queue counters) and ``.wait_idle(processed=n)`` (queue empty after at
  least n reconciles since the process started). Stopped at teardown; its log is printed then,
  which pytest shows for a failed test.
* ``pool``: :class:`tests.support.tokenpool_objects.Pool` on the test ``namespace``: create/patch/
  read the custom resources and the compiled objects.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.dev.controlplane import free_port
from tokenpool.dev.processes import ManagedProcess, register_cleanup, unregister_cleanup

TOKENPOOL_BIN = Path(sys.executable).parent / "tokenpool"


class OperatorProcess:
    def __init__(self, namespace: str, kubeconfig: str, log_dir: Path, env: dict[str, Any]) -> None:
        self.namespace = namespace
        self.port = free_port()
        self.log_path = log_dir / f"operator-{namespace}-{self.port}.log"
        self._env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TOKENPOOL_OPERATOR_NAMESPACES": namespace,
            "TOKENPOOL_OPERATOR_LIVENESS_HOST": "127.0.0.1",
            "TOKENPOOL_OPERATOR_LIVENESS_PORT": str(self.port),
            **{f"TOKENPOOL_OPERATOR_{k.upper()}": str(v) for k, v in env.items()},
        }
        self.process: ManagedProcess | None = None
        self.start()

    def start(self) -> None:
        argv = [str(TOKENPOOL_BIN), "operator"]
        self.process = ManagedProcess("tokenpool-operator", argv, self.log_path, self._env)
        register_cleanup(self.process.stop)

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"operator exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for(ready, timeout=timeout, what="operator liveness endpoint")

    def probe(self) -> dict[str, Any]:
        """The operator's liveness answer: ``{"status": "ok", "queue": {"pending": n, "processed": m}}``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as resp:
            return dict(json.loads(resp.read()))

    def wait_idle(self, processed: int = 1, timeout: float = 30.0) -> None:
        """Until the work queue is empty after at least ``processed`` reconciles since start."""

        def idle() -> bool:
            queue = self.probe().get("queue") or {}
            return queue.get("pending") == 0 and queue.get("processed", 0) >= processed

        wait_for(idle, timeout=timeout, what="operator work queue idle")

    def log(self, lines: int = 200) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            unregister_cleanup(self.process.stop)
            self.process = None

    def restart(self, wait: bool = True) -> None:
        self.stop()
        self.start()
        if wait:
            self.wait_ready()


@pytest.fixture
def operator_process(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(namespace: str, wait: bool = True, **env: Any) -> OperatorProcess:
        plane = request.getfixturevalue("control_plane")
        proc = OperatorProcess(namespace, plane.kubeconfig, tmp_path, env)
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- operator ({proc.namespace}) log (shown by pytest on failure) ---\n{proc.log(150)}")


@pytest.fixture
def pool(request: pytest.FixtureRequest, namespace: str) -> Pool:
    """:class:`Pool` on the test ``namespace`` (CRDs applied)."""
    return Pool(request.getfixturevalue("kube_api"), namespace)
