"""Disruptions under load, through the proxy's Service: a `helm upgrade` that rolls both proxy
replicas, a proxy pod deleted, the operator pod restarted. Requests must not fail, usage must
stay exact (a stopping replica flushes on SIGTERM: docs/usage.md), personal tokens must not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.support.cluster.figures import record_figure
from tests.support.cluster.load import LoadLoop
from tests.support.cluster.release import Release
from tests.support.plugin_client import PluginClient
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as contract

pytestmark = pytest.mark.cluster

USER = "loader"
T = TypeVar("T")


def _requests(pool: Pool, user: str = USER) -> int:
    usage = (pool.get(contract.KIND_USER, user).get("status") or {}).get("usage") or {}
    return int((usage.get("total") or {}).get("requests", 0))


@pytest.fixture(scope="module")
def loader(release: Release) -> Iterator[str]:
    """A user of its own with an upstream token that takes any concurrency: what limits the load
    is the proxies, not a quota."""
    pool = release.pool
    pool.credential("loader-cred", "f" * 64)
    pool.token("loader-up", secret="loader-cred", endpoint=release.fake.tenant("loader"), maxConcurrency=64)
    pool.user(USER)
    pool.allocation("loader-all", USER, tokens=["loader-up"])
    token = wait_for(lambda: pool.personal_token(USER), 90, what="loader's personal token")
    assert token is not None
    client = PluginClient(release.proxy_url, token)
    wait_for(
        lambda: client.validate() and len(client.list_tokens()) == 1, 90, what="both proxies serve loader"
    )
    yield token


def _settled(pool: Pool, before: int, ok: int) -> int:
    """Wait until the status counts every answered request (one flush interval + the SIGTERM
    flushes); return the count even if it never gets there, for the assertion's message."""
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: _requests(pool) - before >= ok, 60, what="usage caught up")
    return _requests(pool) - before


async def test_helm_upgrade_rolls_both_proxies_under_load_without_failures(
    release: Release, loader: str
) -> None:
    old = {p.metadata.name for p in release.pods("proxy")}
    before = _requests(release.pool)
    async with LoadLoop(release.proxy_url, loader) as load:
        await load.wait_for_successes(50)
        took = await _in_thread(release.upgrade, "proxy.upstreamUserAgent=tokenpool-cluster-test/2")
        await load.wait_for_successes(load.figures.ok + 50)  # and traffic flows on the new pods
    new = {p.metadata.name for p in release.ready_pods("proxy")}
    counted = _settled(release.pool, before, load.figures.ok)
    record_figure(
        f"rolling upgrade: helm upgrade --wait {took:.1f}s; load {load.figures}; usage counted {counted}"
    )
    assert len(new) == 2 and not new & old, f"both replicas replaced: {old} -> {new}"
    for pod in release.ready_pods("proxy"):
        env = {e.name: e.value for e in pod.spec.containers[0].env}
        assert env["TOKENPOOL_PROXY_UPSTREAM_USER_AGENT"] == "tokenpool-cluster-test/2"
    assert load.figures.failed == 0, str(load.figures)
    assert counted == load.figures.ok, f"usage {counted} != {load.figures.ok} answered"


async def test_deleting_a_proxy_pod_under_load_loses_nothing(release: Release, loader: str) -> None:
    victim = release.ready_pods("proxy")[0].metadata.name
    before = _requests(release.pool)
    async with LoadLoop(release.proxy_url, loader) as load:
        await load.wait_for_successes(50)
        started = time.monotonic()
        await _in_thread(release.kubectl, "delete", "pod", "-n", release.namespace, victim, "--wait=true")
        await _in_thread(
            wait_for, lambda: len(release.ready_pods("proxy")) == 2, 180, 0.5, "a replacement replica Ready"
        )
        replaced = time.monotonic() - started
        await load.wait_for_successes(load.figures.ok + 50)
    counted = _settled(release.pool, before, load.figures.ok)
    record_figure(
        f"proxy pod deleted: replacement Ready after {replaced:.1f}s; "
        f"load {load.figures}; usage counted {counted}"
    )
    # A deleted pod gets SIGTERM (after the preStop delay): it finishes its requests and flushes,
    # so the documented bound for a graceful stop is 0 lost (docs/usage.md, Shutdown).
    assert load.figures.failed == 0, str(load.figures)
    assert counted == load.figures.ok, f"usage {counted} != {load.figures.ok} answered"


async def test_force_deleting_a_proxy_pod_loses_at_most_one_flush_interval(
    release: Release, loader: str
) -> None:
    """``kubectl delete --grace-period=0 --force``: the kubelet kills the pod after the minimum
    grace, so the replica may die before its final flush. docs/usage.md bounds the loss by one
    flush interval of that replica's traffic plus the time its last write took (~1 s)."""
    interval = 1.0  # proxy.flushIntervalSeconds of the release
    victim = release.ready_pods("proxy")[0].metadata.name
    before = _requests(release.pool)
    async with LoadLoop(release.proxy_url, loader) as load:
        await load.wait_for_successes(200)
        flags = ["--grace-period=0", "--force", "--wait=false"]
        await _in_thread(release.kubectl, "delete", "pod", "-n", release.namespace, victim, *flags)
        await _in_thread(
            wait_for, lambda: len(release.ready_pods("proxy")) == 2, 180, 0.5, "a replacement replica Ready"
        )
        await load.wait_for_successes(load.figures.ok + 200)
    counted = _settled(release.pool, before, load.figures.ok)
    lost = load.figures.ok - counted
    rate = load.figures.ok / load.figures.seconds  # both replicas: an upper bound for the victim's
    bound = rate * (interval + 1.0)
    record_figure(
        f"proxy pod force-deleted: load {load.figures}; usage counted {counted}; "
        f"lost {lost} (bound {bound:.0f} = {rate:.0f}/s x {interval + 1.0:.0f}s)"
    )
    assert 0 <= lost <= bound, f"lost {lost} of {load.figures.ok} answered, bound {bound:.0f}"


def test_operator_restart_keeps_personal_tokens(release: Release, loader: str) -> None:
    pool = release.pool
    users = [u["metadata"]["name"] for u in pool.custom.list_namespaced_custom_object(
        contract.GROUP, contract.VERSION, release.namespace, contract.PLURAL_USER)["items"]]  # fmt: skip
    tokens = {u: pool.personal_token(u) for u in users}
    assert all(tokens.values()) and len(users) >= 2, tokens
    [old] = release.pods("operator")
    release.kubectl("delete", "pod", "-n", release.namespace, old.metadata.name, "--wait=true", timeout=180)
    new = wait_for(
        lambda: [p for p in release.ready_pods("operator") if p.metadata.uid != old.metadata.uid],
        180,
        0.5,
        "a new operator pod Ready",
    )[0]
    # The new operator works (a new user gets a token) and left every existing token alone.
    pool.user("carol")
    wait_for(lambda: pool.personal_token("carol"), 120, what="carol's personal token from the new operator")
    assert {u: pool.personal_token(u) for u in users} == tokens
    assert new.status.container_statuses[0].restart_count == 0


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Blocking calls (helm, kubectl, polling) off the event loop: the load keeps running."""
    return await asyncio.to_thread(fn, *args)
