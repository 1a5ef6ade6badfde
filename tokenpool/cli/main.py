"""The `tokenpool` command: run the operator, the proxy or the console, and admin conveniences."""

from __future__ import annotations

import typer

from tokenpool.cli.commands import register as register_admin_commands

app = typer.Typer(
    name="tokenpool",
    help="Kubernetes-native multi-user token pool for Augment and OpenAI-compatible upstreams.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("operator")
def operator_cmd() -> None:
    """Run the operator: reconcile PoolUser/UpstreamToken/TokenAllocation into routes.

    Settings come from TOKENPOOL_OPERATOR_* environment variables (docs/operator.md).
    """
    from tokenpool_operator.main import run

    run()


@app.command("proxy")
def proxy_cmd() -> None:
    """Run the proxy: the plugin API and the OpenAI-compatible endpoint.

    Settings come from TOKENPOOL_PROXY_* environment variables (docs/proxy.md).
    """
    from tokenpool_proxy.main import run

    run()


@app.command("console")
def console_cmd() -> None:
    """Run the console: the admin REST API, the web dashboard and the self-service page.

    Settings come from TOKENPOOL_CONSOLE_* environment variables (docs/console.md).
    """
    from tokenpool_console.main import run

    run()


register_admin_commands(app)

if __name__ == "__main__":
    app()
