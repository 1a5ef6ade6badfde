"""`tokenpool dev`: the whole system on this machine, usable in a minute.

One foreground process owns everything it starts: the control plane (unless an existing cluster
is used), the fake Augment upstream, the operator and the proxy, each a child process in its own
process group with its log under ``<state>/logs``. Ctrl-C (or SIGTERM) stops them all; nothing
outlives this process. State (etcd data, PKI, logs) lives in ``.tokenpool/dev`` of the checkout
(else ~/.cache/tokenpool/dev), so a second run reuses the cluster's data and starts in seconds.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Annotated, Any, cast

import typer

from tokenpool import contract
from tokenpool.dev_demo import DEMO_LABEL, Instructions, demo_users, http_json, point_at_fake
from tokenpool.devtools import binaries
from tokenpool.devtools.processes import ManagedProcess, register_cleanup

REPO_ROOT = binaries.REPO_ROOT
DEFAULT_NAMESPACE = "tokenpool-dev"


def default_state_dir() -> Path:
    if (REPO_ROOT / ".git").exists():
        return REPO_ROOT / ".tokenpool" / "dev"
    return binaries.cache_dir() / "dev"


def echo(message: str) -> None:
    typer.echo(f"[tokenpool dev] {message}", err=True)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Any, timeout: float, children: list[ManagedProcess]) -> Any:
    """Poll ``check()`` until truthy; fail early when a child died, with its log tail."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for child in children:
            if not child.alive():
                raise DevError(f"{child.name} exited while waiting for {what}:\n{child.log_tail(30)}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.name} ({c.log_path}) ---\n{c.log_tail(15)}" for c in children)
            raise DevError(f"timed out after {timeout:g}s waiting for {what}\n{tails}")
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
        self.timeout = timeout
        self.children: list[ManagedProcess] = []
        self.plane: Any = None
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

    def start_cluster(self, use_current: bool, kubeconfig: str | None) -> str:
        from tokenpool.dev_build import ensure_binaries
        from tokenpool.devtools import ControlPlane

        t = time.monotonic()
        if use_current or kubeconfig:
            path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
            self.plane = ControlPlane.from_kubeconfig(Path(path).expanduser())
            echo(f"using the cluster of {self.plane.kubeconfig}: {self.plane.server}")
        else:
            bin_dir = ensure_binaries(echo)
            echo("starting the embedded control plane (etcd + kube-apiserver) ...")
            self.plane = ControlPlane.launch(bin_dir, workdir=self.state / "controlplane")
            echo(f"control plane {self.plane.server} ready in {time.monotonic() - t:.1f}s")
        return str(self.plane.kubeconfig)

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


def _wait_port(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run(session: DevSession, use_current: bool, kubeconfig: str | None, demo: bool | None) -> Instructions:
    """Start everything and wait until the printed instructions work; return them."""
    from tokenpool.admin_ops import personal_token
    from tokenpool.kubeapply import apply, apply_all, load_yaml_dir, wait_crds_established
    from tokenpool.kubeclient import Target

    session.lock()
    register_cleanup(session.stop)
    kubeconfig_path = session.start_cluster(use_current, kubeconfig)
    api = session.plane.api_client()
    target = Target(api=api, namespace=session.namespace)

    crds = load_yaml_dir(REPO_ROOT / "crds")
    apply_all(api, crds)
    wait_crds_established(api, [d["metadata"]["name"] for d in crds])
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": session.namespace}})
    echo(f"CRDs installed; namespace {session.namespace}")

    if demo is None:
        own = cast(
            dict[str, Any],
            target.custom.list_namespaced_custom_object(
                contract.GROUP, contract.VERSION, session.namespace, contract.PLURAL_UPSTREAM
            ),
        )
        demo = not any(DEMO_LABEL not in (o["metadata"].get("labels") or {}) for o in own.get("items", []))
    python = sys.executable
    users: list[tuple[str, str]] = []
    if demo:
        fake_port = free_port()
        fake = session.spawn(
            "fake-augment",
            [python, "-m", "tokenpool.devtools.fake_augment", "--port", str(fake_port), "--no-record"],
            {},
        )
        wait_until("the fake upstream", lambda: _wait_port(fake_port), 30, [fake])
        examples = load_yaml_dir(REPO_ROOT / "examples")
        for doc in examples:
            doc.get("metadata", {}).pop("namespace", None)
        docs = point_at_fake(examples, f"http://127.0.0.1:{fake_port}")
        apply_all(api, docs, session.namespace)
        users = demo_users(docs)
        echo(f"demo upstream on 127.0.0.1:{fake_port}; applied {len(docs)} manifests from examples/")
    else:
        echo("real upstream tokens are configured in the namespace: no demo upstream, no examples")

    if not port_free(session.port):
        new = free_port()
        echo(f"port {session.port} is busy: the proxy uses {new}")
        session.port = new
    common = {"KUBECONFIG": kubeconfig_path}
    session.spawn(
        "operator",
        [python, "-m", "tokenpool.cli", "operator"],
        {
            **common,
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
            **common,
            "TOKENPOOL_PROXY_KUBECONFIG": kubeconfig_path,
            "TOKENPOOL_PROXY_NAMESPACE": session.namespace,
            "TOKENPOOL_PROXY_HOST": "127.0.0.1",
            "TOKENPOOL_PROXY_PORT": str(session.port),
            "TOKENPOOL_PROXY_LOG_FORMAT": "text",
        },
    )
    url = f"http://127.0.0.1:{session.port}"
    echo(f"operator and proxy started; waiting until {url} serves the demo users ...")
    children, timeout = session.children, session.timeout
    wait_until("the proxy's /readyz", lambda: http_json(url + "/readyz")[0] == 200, timeout, children)
    tokens = []
    for name, role in users:
        pt = wait_until(
            f"the personal token of {name}", lambda n=name: personal_token(target, n), timeout, children
        )
        wait_until(
            f"the proxy to know {name}",
            lambda pt=pt: (http_json(url + "/api/user/info", pt)[1] or {}).get("status") == "success",
            timeout,
            children,
        )
        tokens.append((name, role, pt))
    info = Instructions(url, session.namespace, kubeconfig_path, tokens, "", str(session.logs), demo)
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


def supervise(session: DevSession) -> None:
    """Block until Ctrl-C, or until a child dies (then show why and fail)."""
    while True:
        for child in session.children:
            if not child.alive():
                raise DevError(f"{child.name} exited unexpectedly:\n{child.log_tail(30)}")
        time.sleep(0.5)


def dev_command(
    use_current_context: Annotated[
        bool,
        typer.Option(
            "--use-current-context",
            envvar="TOKENPOOL_DEV_USE_CURRENT_CONTEXT",
            help="Use the cluster of the current kubeconfig context instead of starting one.",
        ),
    ] = False,
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", envvar="TOKENPOOL_KUBECONFIG", help="Use this kubeconfig's cluster."),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace for everything.")
    ] = DEFAULT_NAMESPACE,
    port: Annotated[int, typer.Option(help="Proxy port on 127.0.0.1 (another free one if busy).")] = 8080,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Fake upstream + examples/ (default: unless the namespace already has real UpstreamTokens).",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="TOKENPOOL_DEV_STATE_DIR",
            help="Where etcd data, certificates and logs live (default: .tokenpool/dev).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for everything to be ready.")] = 120.0,
) -> None:
    """Run the whole system locally: control plane, CRDs, operator, proxy and a demo upstream.

    Prints the proxy URL, the demo users' personal tokens and commands that work as printed.
    Ctrl-C stops everything.
    """
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
    except (DevError, binaries.BinariesNotFound, TimeoutError) as exc:
        echo(f"error: {exc}")
        raise typer.Exit(1) from None
    finally:
        session.stop()
    echo("stopped")
