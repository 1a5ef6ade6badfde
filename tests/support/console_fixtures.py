"""Console fixtures: real ``tokenpool console`` processes and an HTTP client that logs in.

* ``console_process(namespaces, **env) -> ConsoleProcess``: a real ``.venv/bin/tokenpool console``
  with ``KUBECONFIG`` = the given kubeconfig (default: the control plane's admin one) serving
  ``namespaces`` (list or comma-separated), waited for until ``/readyz`` answers 200. ``env`` keys
  are TOKENPOOL_CONSOLE_* settings without the prefix (``join="open"``). Cookies are not marked
  Secure (the tests speak plain HTTP on 127.0.0.1). ``.url``, ``.log()``, ``.stop()``,
  ``.client()`` (a :class:`ConsoleClient`).
* :class:`ConsoleClient`: httpx on the console; ``.login(token)`` keeps the session cookie and
  sends the CSRF token on writes, like the pages do; ``.bearer(token)`` authenticates every call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.waiting import wait_for
from tokenpool.dev.controlplane import free_port
from tokenpool.dev.processes import ManagedProcess, register_cleanup, unregister_cleanup

TOKENPOOL_BIN = Path(sys.executable).parent / "tokenpool"


class ConsoleClient:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60.0, follow_redirects=False)
        self.csrf = ""

    def login(self, token: str, namespace: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"token": token}
        if namespace:
            body["namespace"] = namespace
        response = self.http.post("/api/auth/login", json=body)
        if response.status_code == 200:
            self.csrf = response.json()["csrfToken"]
            self.http.headers["X-CSRF-Token"] = self.csrf
        return response

    def bearer(self, token: str) -> ConsoleClient:
        self.http.headers["Authorization"] = f"Bearer {token}"
        return self

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.patch(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(path, **kw)

    def close(self) -> None:
        self.http.close()


class ConsoleProcess:
    def __init__(self, namespaces: str, kubeconfig: str, log_dir: Path, env: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TOKENPOOL_CONSOLE_NAMESPACES": namespaces,
            "TOKENPOOL_CONSOLE_HOST": "127.0.0.1",
            "TOKENPOOL_CONSOLE_PORT": str(self.port),
            "TOKENPOOL_CONSOLE_COOKIE_SECURE": "false",
            "TOKENPOOL_CONSOLE_LOG_FORMAT": "text",
            **{f"TOKENPOOL_CONSOLE_{k.upper()}": str(v) for k, v in env.items()},
        }
        self.log_path = log_dir / f"console-{self.port}.log"
        self.process = ManagedProcess(
            "tokenpool-console", [str(TOKENPOOL_BIN), "console"], self.log_path, full_env
        )
        register_cleanup(self.process.stop)
        self.clients: list[ConsoleClient] = []

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"console exited:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, what="console /readyz")

    def client(self) -> ConsoleClient:
        client = ConsoleClient(self.url)
        self.clients.append(client)
        return client

    def log(self, lines: int = 200) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.process.stop()
        unregister_cleanup(self.process.stop)


@pytest.fixture
def console_process(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ConsoleProcess]]:
    started: list[ConsoleProcess] = []

    def start(
        namespaces: str | list[str], kubeconfig: str | None = None, wait: bool = True, **env: Any
    ) -> ConsoleProcess:
        plane = request.getfixturevalue("control_plane")
        names = namespaces if isinstance(namespaces, str) else ",".join(namespaces)
        proc = ConsoleProcess(names, kubeconfig or plane.kubeconfig, tmp_path, env)
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- console {proc.url} log (shown by pytest on failure) ---\n{proc.log(120)}")
