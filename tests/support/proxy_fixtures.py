"""Proxy fixtures: the fake Augment upstream and real ``tokenpool proxy`` processes.

* ``fake_upstream``: a running ``python -m tokenpool.dev.fake_upstream`` (one per session,
  reset before each test): ``.url``, ``.tenant(name)``, ``.fault(token, ...)``, ``.configure``,
  ``.requests()``, ``.stats()``.
* ``proxy_process(namespace, **env)``: a real ``.venv/bin/tokenpool proxy`` with
  ``KUBECONFIG=control_plane.kubeconfig``, started and waited for until ``/readyz`` answers 200:
  ``.url`` (the public port), ``.ops_url`` (operations: /metrics, /healthz, /readyz),
  ``.log()``, ``.stop()``, ``.restart()``. ``env`` keys are TOKENPOOL_PROXY_* settings without the
  prefix (``slot_wait_seconds=0.5``).
* ``routes_in_cluster(namespace)``: writes compiled routes as the operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.proxy_routes import RoutesInCluster
from tests.support.waiting import async_wait_for, wait_for
from tokenpool.dev.controlplane import free_port
from tokenpool.dev.processes import ManagedProcess, register_cleanup, unregister_cleanup

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKENPOOL_BIN = Path(sys.executable).parent / "tokenpool"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class FakeUpstream:
    def __init__(self, log_dir: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        argv = [
            sys.executable,
            "-m",
            "tokenpool.dev.fake_upstream",
            "--port",
            str(self.port),
            *extra_args,
        ]
        self.process = ManagedProcess("fake-augment", argv, log_dir / "fake-augment.log")
        register_cleanup(self.process.stop)
        self.http = httpx.Client(base_url=self.url, timeout=5.0)
        wait_for(lambda: self._up(), timeout=20, what="fake upstream listening")

    def _up(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"fake upstream exited:\n{self.process.log_tail(30)}")
        try:
            return self.http.get("_control/stats").status_code == 200
        except httpx.HTTPError:
            return False

    def tenant(self, name: str) -> str:
        return f"{self.url}{name}/"

    def configure(self, **answer: Any) -> None:
        self.http.put("_control/config", json=answer).raise_for_status()

    def fault(self, token: str, fault: str | None = None, **spec: Any) -> None:
        body = {"fault": fault, **spec} if fault else spec
        self.http.put(f"_control/tokens/{token}", json=body).raise_for_status()

    def clear_fault(self, token: str) -> None:
        self.http.delete(f"_control/tokens/{token}").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.http.get("_control/requests").json()
        return result

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self.http.get("_control/stats").json()
        return result

    def reset(self) -> None:
        self.http.post("_control/reset").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.process.stop()
        unregister_cleanup(self.process.stop)


@pytest.fixture(scope="session")
def _fake_upstream_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(tmp_path_factory.mktemp("fake-upstream"))
    yield fake
    fake.stop()


@pytest.fixture
def fake_upstream(_fake_upstream_session: FakeUpstream) -> FakeUpstream:
    _fake_upstream_session.reset()
    return _fake_upstream_session


class ProxyProcess:
    def __init__(self, namespace: str, kubeconfig: str, log_dir: Path, env: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ops_port = free_port()
        self.ops_url = f"http://127.0.0.1:{self.ops_port}"
        self.log_path = log_dir / f"proxy-{self.port}.log"
        full_env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TOKENPOOL_PROXY_NAMESPACE": namespace,
            "TOKENPOOL_PROXY_HOST": "127.0.0.1",
            "TOKENPOOL_PROXY_PORT": str(self.port),
            "TOKENPOOL_PROXY_OPS_PORT": str(self.ops_port),
            **{f"TOKENPOOL_PROXY_{k.upper()}": str(v) for k, v in env.items()},
        }
        self._env = full_env
        self.start()

    def start(self) -> None:
        self.process = ManagedProcess(
            "tokenpool-proxy", [str(TOKENPOOL_BIN), "proxy"], self.log_path, env=self._env
        )
        register_cleanup(self.process.stop)

    def restart(self, wait: bool = True) -> None:
        """Stop (SIGTERM, graceful) and start again on the same ports."""
        self.stop()
        self.start()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise RuntimeError(f"proxy exited:\n{self.log()}")
            return _answers(f"{self.ops_url}/readyz")

        wait_for(ready, timeout=timeout, what="proxy /readyz")

    def log(self, lines: int = 200) -> str:
        return self.process.log_tail(lines)

    def stop(self) -> None:
        self.process.stop()
        unregister_cleanup(self.process.stop)


@pytest.fixture
def proxy_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(namespace: str, wait: bool = True, **env: Any) -> ProxyProcess:
        plane = request.getfixturevalue("control_plane")
        proc = ProxyProcess(namespace, plane.kubeconfig, tmp_path, env)
        started.append(proc)
        if wait:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- proxy {proc.url} log (shown by pytest on failure) ---\n{proc.log(80)}")


@pytest.fixture
def routes_in_cluster(request: pytest.FixtureRequest) -> Callable[[str], RoutesInCluster]:
    def make(namespace: str) -> RoutesInCluster:
        return RoutesInCluster(request.getfixturevalue("kube_api"), namespace)

    return make


class InProcessProxy:
    """The proxy app in this process over an in-memory index (no API server): ``.client`` is an
    httpx.AsyncClient on it through ASGITransport, ``.index``/``.svc`` are its live objects."""

    def __init__(self, app: Any, client: httpx.AsyncClient, stack: contextlib.AsyncExitStack) -> None:
        self.app = app
        self.client = client
        self.svc = app.state.svc
        self.index = self.svc.index
        self._stack = stack

    async def serve(self) -> str:
        """Also serve the app over real HTTP (uvicorn in this loop); returns its base URL.

        ASGITransport buffers whole responses, so streaming and disconnect behaviour need this.
        """
        import uvicorn

        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, lifespan="off", log_config=None)
        )
        task = asyncio.create_task(server.serve())

        async def stop() -> None:
            server.should_exit = True
            await task

        self._stack.push_async_callback(stop)
        await async_wait_for(lambda: _started(server), timeout=10, what="in-process uvicorn started")
        return f"http://127.0.0.1:{port}"


async def _started(server: Any) -> bool:
    return bool(server.started)


@pytest.fixture
async def inprocess_proxy() -> AsyncIterator[Callable[..., Awaitable[InProcessProxy]]]:
    """``await inprocess_proxy(users=[...], upstreams=[...], **settings)``."""
    from tokenpool_proxy.app import create_app
    from tokenpool_proxy.index import RouteIndex
    from tokenpool_proxy.settings import ProxySettings

    stack = contextlib.AsyncExitStack()

    async def make(
        users: Sequence[Any] = (), upstreams: Sequence[Any] = (), **settings: Any
    ) -> InProcessProxy:
        index = RouteIndex()
        index.replace_upstreams([(f"up-{u.name}", u) for u in upstreams])
        index.replace_users([(f"user-{u.user}", u) for u in users])
        app = create_app(ProxySettings(**{"ops_port": 0, **settings}), index=index)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy", timeout=30
        )
        await stack.enter_async_context(client)
        return InProcessProxy(app, client, stack)

    async with stack:
        yield make
