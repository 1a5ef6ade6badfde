"""The `tokenpool dev` command line; the work is in :mod:`tokenpool.dev`, imported on use so
that `tokenpool --help` and the admin commands do not pay for it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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
    ] = "tokenpool-dev",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Proxy port on 127.0.0.1 (another free one if busy).")
    ] = 8080,
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
    from tokenpool.dev.runner import run_dev

    run_dev(use_current_context, kubeconfig, namespace, port, demo, state_dir, timeout)
