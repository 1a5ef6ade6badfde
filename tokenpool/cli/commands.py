"""Admin commands of `tokenpool`: users, tokens, allocations, migration from the D1 system.

Each command is a thin shell over :mod:`tokenpool.cli.operations` (Kubernetes API only); docs/cli.md
lists the plain-kubectl equivalent of each. Results go to stdout (a created user's token alone,
so scripts can capture it), explanations to stderr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from tokenpool.cli.account_login import tokens_login
from tokenpool.cli.invocation import Context, Kubeconfig, Namespace, fail, run, target

users_app = typer.Typer(help="Create users, show or rotate their personal tokens, list them with usage.")
tokens_app = typer.Typer(help="Upstream tokens in the pool: list them, add an Augment account by signing in.")
tokens_app.command("login")(tokens_login)

WaitTimeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the operator to write the personal token.")
]


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="PoolUser name (DNS-1123: lowercase letters, digits, '-').")],
    email: Annotated[str, typer.Option(help="Contact e-mail, shown to the plugin.")] = "",
    role: Annotated[str, typer.Option(help="User or Admin.")] = "User",
    quota: Annotated[
        int | None, typer.Option(help="How many upstream tokens may be allocated (default: operator's).")
    ] = None,
    display_name: Annotated[str, typer.Option(help="Human name (default: NAME).")] = "",
    timeout: WaitTimeout = 30.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Create a PoolUser, wait for the operator to generate its personal token, print the token once.

    Only the token goes to stdout: `TOKEN=$(tokenpool users create alice)`.
    """
    from tokenpool.cli import operations

    if role not in ("User", "Admin"):
        fail(f"--role must be User or Admin, not {role!r}", code=2)
    where = target(kubeconfig, context, namespace)
    run(where, operations.create_user, name, email=email, role=role, quota=quota, display_name=display_name)
    typer.echo(f"created PoolUser {where.namespace}/{name}; waiting for its personal token ...", err=True)
    token = run(where, operations.wait_personal_token, name, timeout)
    typer.echo(token)
    typer.echo("Give this personal token to the user; `tokenpool users token NAME` shows it again.", err=True)


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="PoolUser name.")],
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Print a user's current personal token (read from its Secret)."""
    from tokenpool.cli import operations

    where = target(kubeconfig, context, namespace)
    token = run(where, operations.personal_token, name)
    if not token:
        fail(f"{name!r} has no personal token yet: the operator has not generated it (is it running?)")
    typer.echo(token)


@users_app.command("rotate")
def users_rotate(
    name: Annotated[str, typer.Argument(help="PoolUser name.")],
    timeout: WaitTimeout = 30.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Replace a user's personal token with a new one and print it; the old one stops working."""
    from tokenpool.cli import operations

    where = target(kubeconfig, context, namespace)
    old = run(where, operations.rotate, name)
    typer.echo(f"asked the operator to rotate the personal token of {name}; waiting ...", err=True)
    typer.echo(run(where, operations.wait_personal_token, name, timeout, previous=old))


@users_app.command("list")
def users_list(kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None) -> None:
    """List users with their quota, allocated tokens, readiness and usage (today and total)."""
    from tokenpool.cli import tables

    where = target(kubeconfig, context, namespace)
    rows = run(where, tables.user_rows)
    typer.echo(tables.table(rows) if rows else f"No PoolUsers in namespace {where.namespace}.")


@tokens_app.command("list")
def tokens_list(kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None) -> None:
    """List upstream tokens with readiness, health, allocation count and usage."""
    from tokenpool.cli import tables

    where = target(kubeconfig, context, namespace)
    rows = run(where, tables.token_rows)
    typer.echo(tables.table(rows) if rows else f"No UpstreamTokens in namespace {where.namespace}.")


@tokens_app.command("check")
def tokens_check(
    name: Annotated[str, typer.Argument(help="UpstreamToken name.")],
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the operator's check.")
    ] = 60.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Have the operator check a token now; a passed check puts an Unhealthy token back in traffic."""
    from tokenpool.cli import operations

    where = target(kubeconfig, context, namespace)
    request = run(where, operations.request_check, name)
    typer.echo(f"asked the operator to check {name}; waiting ...", err=True)
    check = run(where, operations.wait_check, name, request, timeout)
    result = check.get("lastResult") or "?"
    typer.echo(f"{name}: {result}" + (f" (next check {check['nextAt']})" if check.get("nextAt") else ""))
    if result != "Healthy":
        raise typer.Exit(1)


def _parse_selector(selector: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            fail(f"--selector takes key=value[,key=value], got {part!r}", code=2)
        pairs[key.strip()] = value.strip()
    return pairs


def allocate(
    user: Annotated[str, typer.Argument(help="PoolUser name.")],
    tokens: Annotated[str | None, typer.Option(help="Comma-separated UpstreamToken names.")] = None,
    selector: Annotated[
        str | None, typer.Option(help="Label selector key=value[,key=value]; the operator picks tokens.")
    ] = None,
    count: Annotated[int | None, typer.Option(min=1, help="With --selector: how many tokens.")] = None,
    priority: Annotated[int, typer.Option(min=0, help="Lower is preferred.")] = 1,
    name: Annotated[str | None, typer.Option(help="Allocation name (default: USER-<timestamp>).")] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the operator's verdict (0: do not wait).")
    ] = 15.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Grant upstream tokens to a user: by name (--tokens a,b) or by selector (--selector k=v --count N).

    Then waits for the operator: prints the granted tokens, or fails (exit 1) with its reason,
    e.g. QuotaExceeded when the user's tokenQuota does not allow more.
    """
    from tokenpool.cli import operations

    names = [t.strip() for t in tokens.split(",") if t.strip()] if tokens else None
    labels = _parse_selector(selector) if selector else None
    if bool(names) == bool(labels):
        fail("give either --tokens or --selector (with --count)", code=2)
    where = target(kubeconfig, context, namespace)
    obj = run(where, operations.allocate, user, names, labels, count, priority, name)
    alloc = obj["metadata"]["name"]
    typer.echo(f"tokenallocation.tokenpool.io/{alloc} created")
    if not wait:
        return
    verdict = run(where, operations.wait_allocation, alloc, wait)
    if verdict is None:
        typer.secho(f"warning: the operator has not reconciled {alloc} within {wait:g}s", err=True)
    elif not verdict.ready:
        fail(f"{alloc} is not ready ({verdict.reason}): {verdict.message}")
    else:
        typer.echo(f"granted: {', '.join(verdict.tokens)}")


def migrate(
    dump: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="SQL file from `wrangler d1 export`.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the manifests here (mode 0600) instead of stdout."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Set metadata.namespace.")
    ] = None,
) -> None:
    """Convert a D1 export of the original Cloudflare Worker system into tokenpool manifests.

    Users keep their personal tokens, tokens become UpstreamTokens with credential Secrets,
    allocations keep their priority. Review, then `kubectl apply -f` the output.
    """
    import yaml

    from tokenpool.cli.d1_migration import MigrationError
    from tokenpool.cli.d1_migration import migrate as convert

    try:
        result = convert(dump.read_text(encoding="utf-8-sig"), namespace)  # tolerate a BOM
    except (MigrationError, UnicodeDecodeError) as exc:
        fail(str(exc), code=2)
    text = yaml.safe_dump_all(result.manifests, allow_unicode=True, sort_keys=False)
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    summary = f"{len(result.users)} users, {len(result.tokens)} tokens, {len(result.manifests)} manifests"
    if output is None:
        typer.echo(text, nl=False)
        typer.echo(f"migrated {summary}", err=True)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(output, 0o600)  # also when the file existed with wider permissions
    typer.echo(f"migrated {summary} -> {output} (contains credentials: keep it private)", err=True)


def register(app: typer.Typer) -> None:
    """Attach the admin commands to the top-level `tokenpool` app."""
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
    app.command("allocate")(allocate)
    app.command("migrate")(migrate)
    command: Callable[..., None] = _dev_needs_checkout
    try:
        from tokenpool.dev.command import dev_command

        command = dev_command
    except ImportError:  # the runtime install (`pip install .`) carries no dev tooling
        pass
    app.command("dev")(command)


def _dev_needs_checkout() -> None:
    """Run the whole system locally (needs a checkout of the repository: `make dev`)."""
    fail("`tokenpool dev` runs from a checkout of the repository with the dev extra: `make dev`")
