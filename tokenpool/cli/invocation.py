"""How a command reaches the cluster: options like kubectl's, one event loop per command, and
errors turned into one clear line (never a traceback)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from tokenpool.kube.credentials import ClusterConfig

T = TypeVar("T")

Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (like kubectl).")
]
Context = Annotated[
    str | None, typer.Option("--context", help="Kubeconfig context (default: the current one).")
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        envvar="TOKENPOOL_NAMESPACE",
        help="Namespace (default: the context's, else 'default').",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@dataclass(frozen=True)
class Where:
    """The cluster and namespace a command acts on, resolved like kubectl resolves them:
    ``--kubeconfig`` / ``$KUBECONFIG`` / in-cluster / ``~/.kube/config``; ``--namespace`` / the
    context's / ``default``."""

    config: ClusterConfig
    namespace: str


def target(kubeconfig: str | None, context: str | None, namespace: str | None) -> Where:
    from tokenpool.kube.credentials import ConfigError, load

    try:
        config = load(kubeconfig or None, context)
    except ConfigError as exc:
        fail(str(exc))
    return Where(config, namespace or config.namespace)


def run(where: Where, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run an admin operation; its errors (and unreachable API servers) become one clear line."""
    import aiohttp

    from tokenpool.cli.operations import AdminError, Target
    from tokenpool.kube.client import KubeClient

    async def call() -> T:
        async with KubeClient(where.config, retries=2) as kube:
            return await fn(Target(kube, where.namespace), *args, **kwargs)

    try:
        return asyncio.run(call())
    except AdminError as exc:
        fail(str(exc))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        fail(f"cannot reach the Kubernetes API server at {where.config.server}: {exc}")
