"""`tokenpool tokens login NAME`: add an Augment account to the pool by signing in with it.

Prints the sign-in URL, reads the JSON the sign-in page shows, checks it belongs to this login,
exchanges the code (:mod:`tokenpool.accounts.augment_oauth`) and creates the credential Secret
and the UpstreamToken. The access token goes only into the Secret; nothing prints it.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import aiohttp
import typer

from tokenpool.accounts import augment_oauth as oauth
from tokenpool.accounts.upstream_account import CreateError, create_upstream_token
from tokenpool.cli.invocation import Context, Kubeconfig, Namespace, fail, run, target
from tokenpool.cli.operations import AdminError, Target, explain, wait_condition
from tokenpool.contract import compiled as contract

MANAGED_BY_CLI = "tokenpool-cli"


async def create_augment_token(
    target: Target,
    name: str,
    tenant_url: str,
    access_token: str,
    spec_extra: dict[str, Any],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The credential Secret and the UpstreamToken (:mod:`tokenpool.accounts.upstream_account`);
    a Secret that could not be made owned by the token is a warning, not a failure."""
    spec = {"provider": "Augment", "endpoint": tenant_url, **spec_extra}
    try:
        created = await create_upstream_token(
            target.kube, target.namespace, name, spec, access_token, labels, MANAGED_BY_CLI
        )
    except CreateError as exc:
        raise explain(exc.error, exc.what) from None
    if created.owner_error is not None:
        error = created.owner_error
        typer.secho(
            f"warning: Secret {created.secret_name} could not be made owned by the token "
            f"({error.status} {error.reason}): delete it yourself when you delete the token",
            err=True,
        )
    return created.token


async def sign_in(
    target: Target,
    pending: oauth.PendingLogin,
    answer: oauth.Answer,
    allowed_hosts: tuple[str, ...],
    name: str,
    spec_extra: dict[str, Any],
    labels: dict[str, str],
) -> dict[str, Any]:
    """Check and exchange the answer, then create the objects (nothing is created on a refusal)."""
    try:
        oauth.check(pending, answer, allowed_hosts)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            access_token = await oauth.exchange(session, pending, answer)
    except oauth.LoginError as exc:
        raise AdminError(str(exc)) from None
    return await create_augment_token(target, name, answer.tenant_url, access_token, spec_extra, labels)


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--label takes key=value, got {pair!r}")
        labels[key] = value
    return labels


def tokens_login(
    name: Annotated[str, typer.Argument(help="UpstreamToken name (DNS-1123).")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable).")] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=1, help="spec.maxConcurrency.")] = None,
    min_interval_seconds: Annotated[int | None, typer.Option(min=0, help="spec.minIntervalSeconds.")] = None,
    max_allocations: Annotated[int | None, typer.Option(min=0, help="spec.maxAllocations.")] = None,
    description: Annotated[str | None, typer.Option(help="spec.description.")] = None,
    answer: Annotated[
        str | None, typer.Option(help="The sign-in page's JSON (default: read from standard input).")
    ] = None,
    authorize_url: Annotated[
        str, typer.Option(envvar="TOKENPOOL_AUGMENT_AUTHORIZE_URL", help="Augment's sign-in page.")
    ] = oauth.AUTHORIZE_URL,
    allow_tenant_host: Annotated[
        list[str] | None,
        typer.Option(help="Also accept this tenant host (default: *.augmentcode.com only; repeatable)."),
    ] = None,
    login_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds the sign-in may take.")
    ] = oauth.LOGIN_TTL_S,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the operator's Ready.")] = 15.0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Namespace = None,
) -> None:
    """Add an Augment account by signing in with it (OAuth with PKCE).

    Open the printed URL, sign in, and paste the JSON the page shows. The account's access token
    goes into Secret NAME-credential; the UpstreamToken NAME points at it and its tenant URL.
    """
    spec_extra = {
        k: v
        for k, v in {
            "maxConcurrency": max_concurrency,
            "minIntervalSeconds": min_interval_seconds,
            "maxAllocations": max_allocations,
            "description": description,
        }.items()
        if v is not None
    }
    labels = _labels(label or [])
    where = target(kubeconfig, context, namespace)
    pending = oauth.start(authorize_url, login_timeout)
    typer.echo(
        "Open this URL, sign in with the Augment account, and paste the JSON the page shows:", err=True
    )
    typer.echo(pending.url, err=True)
    text = answer if answer is not None else sys.stdin.readline()
    try:
        parsed = oauth.parse_answer(text)
    except oauth.LoginError as exc:
        fail(str(exc), code=2)
    hosts = (*oauth.ALLOWED_TENANT_HOSTS, *(allow_tenant_host or ()))
    run(where, sign_in, pending, parsed, hosts, name, spec_extra, labels)
    typer.echo(f"upstreamtoken.tokenpool.io/{name} created (tenant {parsed.tenant_url})")
    if wait:
        verdict = run(where, wait_condition, contract.PLURAL_UPSTREAM, name, "Ready", wait)
        if verdict is None:
            typer.secho(f"warning: the operator has not reconciled {name} within {wait:g}s", err=True)
        elif not verdict.ready:
            fail(f"{name} is not ready ({verdict.reason}): {verdict.message}")
        else:
            typer.echo(f"{name} is Ready: allocate it with `tokenpool allocate USER --tokens {name}`")
