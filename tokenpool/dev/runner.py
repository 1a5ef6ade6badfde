"""`tokenpool dev`: the whole system on this machine, usable in a minute.

One foreground process owns everything it starts: the control plane (unless an existing cluster
is used), the fake Augment upstream, the operator, the proxy and the console, each a child process in its own
process group with its log under ``<state>/logs``. Ctrl-C (or SIGTERM) stops them all; nothing
outlives this process. State (etcd data, PKI, logs) lives in ``.tokenpool/dev`` of the checkout
(else ~/.cache/tokenpool/dev), so a second run reuses the cluster's data and starts in seconds.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import aiohttp
import typer

from tokenpool.contract import compiled as contract
from tokenpool.dev import binaries
from tokenpool.dev.controlplane import ControlPlaneError
from tokenpool.dev.demo import DEMO_LABEL, Instructions, demo_users, http_json, point_at_fake
from tokenpool.dev.processes import ManagedProcess, register_cleanup
from tokenpool.dev.session import (
    REPO_ROOT,
    DevError,
    DevSession,
    default_state_dir,
    echo,
    free_port,
    listening,
    port_free,
    wait_until,
)
from tokenpool.kube.client import KubeClient, KubeError, cr_path
from tokenpool.kube.credentials import ConfigError

T = TypeVar("T")


def start_fake_upstream(session: DevSession) -> tuple[ManagedProcess, int]:
    """Started first, before the control plane: it depends on nothing and its start-up overlaps."""
    port = free_port()
    argv = [sys.executable, "-m", "tokenpool.dev.fake_upstream", "--port", str(port), "--no-record"]
    return session.spawn("fake-augment", argv, {}), port


CONSOLE_PORT = 8090


def start_servers(session: DevSession, kubeconfig_path: str) -> None:
    """Start the operator, the proxy and the console together: their start-up (mostly imports)
    overlaps."""
    python = sys.executable
    if not port_free(session.port):
        new = free_port()
        echo(f"port {session.port} is busy: the proxy uses {new}")
        session.port = new
    session.console_port = (
        CONSOLE_PORT if port_free(CONSOLE_PORT) and session.port != CONSOLE_PORT else free_port()
    )
    session.spawn(
        "operator",
        [python, "-m", "tokenpool.cli", "operator"],
        {
            "KUBECONFIG": kubeconfig_path,
            "TOKENPOOL_OPERATOR_NAMESPACES": session.namespace,
            "TOKENPOOL_OPERATOR_LIVENESS_HOST": "127.0.0.1",
            "TOKENPOOL_OPERATOR_LIVENESS_PORT": str(free_port()),
            "TOKENPOOL_OPERATOR_LOG_FORMAT": "text",
        },
    )
    session.spawn(
        "proxy",
        [python, "-m", "tokenpool.cli", "proxy"],
        {
            "KUBECONFIG": kubeconfig_path,
            "TOKENPOOL_PROXY_KUBECONFIG": kubeconfig_path,
            "TOKENPOOL_PROXY_NAMESPACE": session.namespace,
            "TOKENPOOL_PROXY_HOST": "127.0.0.1",
            "TOKENPOOL_PROXY_PORT": str(session.port),
            "TOKENPOOL_PROXY_OPS_PORT": str(session.ops_port),
            "TOKENPOOL_PROXY_LOG_FORMAT": "text",
        },
    )
    session.spawn(
        "console",
        [python, "-m", "tokenpool.cli", "console"],
        {
            "KUBECONFIG": kubeconfig_path,
            "TOKENPOOL_CONSOLE_NAMESPACES": session.namespace,
            "TOKENPOOL_CONSOLE_HOST": "127.0.0.1",
            "TOKENPOOL_CONSOLE_PORT": str(session.console_port),
            # Plain HTTP on 127.0.0.1: cookies without the Secure flag (docs/console.md).
            "TOKENPOOL_CONSOLE_COOKIE_SECURE": "false",
            "TOKENPOOL_CONSOLE_JOIN": "open",
            "TOKENPOOL_CONSOLE_LOG_FORMAT": "text",
        },
    )


def wait_user(session: DevSession, kube: Kube, url: str, name: str) -> str:
    """The user's personal token, once the operator generated it and the proxy accepts it."""
    from tokenpool.cli.operations import personal_token

    def token() -> str:
        return kube.run(personal_token(kube.target, name)) or ""

    pt = wait_until(f"the personal token of {name}", token, session.timeout, session.children)

    def known() -> bool:
        return bool((http_json(url + "/api/user/info", pt)[1] or {}).get("status") == "success")

    wait_until(f"the proxy to accept {name}'s token", known, session.timeout, session.children)
    return pt


class Kube:
    """The project's async client, driven from this synchronous flow through one event loop
    (:class:`asyncio.Runner` keeps it, and so the client's connections, across calls)."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        from tokenpool.cli.operations import Target

        self.loop = asyncio.Runner()
        self.client = KubeClient.from_environment(kubeconfig)
        self.target = Target(self.client, namespace)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coro)

    def close(self) -> None:
        self.loop.run(self.client.close())
        self.loop.close()


def run(session: DevSession, use_current: bool, kubeconfig: str | None, demo: bool | None) -> Instructions:
    """Start everything and wait until the printed instructions work; return them."""

    if not (REPO_ROOT / "crds").is_dir() or not (REPO_ROOT / "examples").is_dir():
        raise DevError(
            f"tokenpool dev runs from a checkout of the repository (no crds/ or examples/ in {REPO_ROOT})"
        )
    session.lock()
    fake = start_fake_upstream(session) if demo is not False else None
    plane = session.start_cluster(use_current, kubeconfig)
    kubeconfig_path = plane.kubeconfig
    # Registered after the control plane's own cleanup, so it runs first (newest first): the
    # operator and the proxy stop before the API server they talk to goes away.
    register_cleanup(session.stop)
    kube = Kube(kubeconfig_path, session.namespace)
    try:
        return _install_and_wait(session, kube, demo, fake)
    finally:
        kube.close()


def _install_and_wait(
    session: DevSession, kube: Kube, demo: bool | None, fake: tuple[ManagedProcess, int] | None
) -> Instructions:
    from tokenpool.dev.manifests import (
        apply,
        apply_all,
        established,
        load_yaml_dir,
        namespace_exists,
        wait_crds_established,
    )

    assert session.plane is not None
    kubeconfig_path = session.plane.kubeconfig

    crds = load_yaml_dir(REPO_ROOT / "crds")
    names = [d["metadata"]["name"] for d in crds]
    # A second run finds its CRDs and namespace in place: the operator and the proxy can start
    # right away, overlapping their start-up with the (idempotent) re-apply below.
    early = all(kube.run(established(kube.client, n)) for n in names) and kube.run(
        namespace_exists(kube.client, session.namespace)
    )
    if early:
        start_servers(session, kubeconfig_path)
    kube.run(apply_all(kube.client, crds))
    kube.run(wait_crds_established(kube.client, names))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": session.namespace}}
    kube.run(apply(kube.client, namespace))
    echo(f"CRDs installed; namespace {session.namespace}")

    if demo is None:
        own = kube.run(kube.client.list(cr_path(session.namespace, contract.PLURAL_UPSTREAM)))
        demo = not any(DEMO_LABEL not in (o["metadata"].get("labels") or {}) for o in own["items"])
    if fake is not None and not demo:
        session.children.remove(fake[0])
        fake[0].stop()
        fake = None
    if not early:
        start_servers(session, kubeconfig_path)
    users: list[tuple[str, str]] = []
    if fake is not None:
        fake_port = fake[1]
        wait_until("the fake upstream", lambda: listening(fake_port), 30, session.children)
        examples = load_yaml_dir(REPO_ROOT / "examples")
        for doc in examples:
            doc.get("metadata", {}).pop("namespace", None)
        docs = point_at_fake(examples, f"http://127.0.0.1:{fake_port}")
        kube.run(apply_all(kube.client, docs, session.namespace))
        users = demo_users(docs)
        echo(f"demo upstream on 127.0.0.1:{fake_port}; applied {len(docs)} manifests from examples/")
    else:
        echo("real upstream tokens are configured in the namespace: no demo upstream, no examples")
    url = f"http://127.0.0.1:{session.port}"
    echo(f"waiting until {url} serves the demo users ...")
    children, timeout = session.children, session.timeout
    ready = f"http://127.0.0.1:{session.ops_port}/readyz"
    wait_until("the proxy's /readyz", lambda: http_json(ready)[0] == 200, timeout, children)
    tokens = [(name, role, wait_user(session, kube, url, name)) for name, role in users]
    console = f"http://127.0.0.1:{session.console_port}"
    wait_until("the console's /readyz", lambda: http_json(console + "/readyz")[0] == 200, timeout, children)
    info = Instructions(url, session.namespace, kubeconfig_path, tokens, "", str(session.logs), demo, console)
    if tokens:
        user_pt = info.user_token()
        wait_until(
            "the demo user's upstream tokens",
            lambda: (http_json(url + "/api/tokens", user_pt)[1] or {}).get("total_count", 0) > 0,
            timeout,
            children,
        )
    models = http_json(url + "/v1/models", tokens[0][2] if tokens else None)[1] or {}
    info.model = next((m["id"] for m in models.get("data", [])), "augment-chat")
    return info


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the run through KeyboardInterrupt (and so through ``finally``),
    also when started in the background, where SIGINT is inherited as ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def supervise(session: DevSession) -> None:
    """Block until Ctrl-C, or until a child dies (then show why and fail)."""
    while session.children:
        for child in session.children:
            if not child.alive():
                raise DevError(f"{child.name} exited unexpectedly:\n{child.log_tail(30)}")
        time.sleep(0.5)


def run_dev(
    use_current_context: bool,
    kubeconfig: str | None,
    namespace: str,
    port: int,
    demo: bool | None,
    state_dir: Path | None,
    timeout: float,
) -> None:
    """The body of `tokenpool dev` (tokenpool/dev/command.py): run until Ctrl-C, exit 1 on errors."""
    stop_on_signals()
    session = DevSession(state_dir or default_state_dir(), namespace, port, timeout)
    started = time.monotonic()
    try:
        info = run(session, use_current_context, kubeconfig, demo)
        echo(f"ready in {time.monotonic() - started:.1f}s")
        typer.echo(info.render())
        sys.stdout.flush()
        supervise(session)
    except KeyboardInterrupt:
        echo("stopping ...")
    except ControlPlaneError as exc:
        echo(f"error: {exc}\n(if the saved cluster state is damaged: rm -rf {session.state} and run again)")
        raise typer.Exit(1) from None
    except (DevError, binaries.BinariesNotFound, TimeoutError) as exc:
        echo(f"error: {exc}")
        raise typer.Exit(1) from None
    except KubeError as exc:
        echo(f"error: {exc}")
        raise typer.Exit(1) from None
    except (aiohttp.ClientError, ConfigError, OSError) as exc:
        echo(f"error: cannot use the cluster: {exc}")
        raise typer.Exit(1) from None
    finally:
        session.stop()
    echo("stopped")
