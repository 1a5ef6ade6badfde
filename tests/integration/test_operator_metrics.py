"""``GET /metrics`` of a real operator process: reconciles, writes and Events are counted, with no
object name, namespace or secret in the scrape."""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tests.support.tokenpool_objects import GOOD_CREDENTIAL, Pool
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def scrape(port: int) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    return text, samples


def test_operator_metrics_count_reconciles_and_writes_without_names(pool: Pool, operator_process) -> None:
    op = operator_process(pool.ns)
    _, before = scrape(op.port)
    assert before["tokenpool_operator_queue_pending"] == 0

    pool.credential("metrics-upstream-cred")
    pool.token("metrics-upstream")
    pool.user("metrics-user-zed")
    wait_for(lambda: pool.user_route("metrics-user-zed"), timeout=20, what="the user's route")
    wait_for(lambda: pool.upstream_route("metrics-upstream"), timeout=20, what="the token's route")
    op.wait_idle()
    text, after = scrape(op.port)

    assert after['tokenpool_operator_reconciles_total{kind="user",outcome="success"}'] >= 1
    assert after['tokenpool_operator_reconciles_total{kind="token",outcome="success"}'] >= 1
    assert after['tokenpool_operator_reconcile_seconds_count{kind="user"}'] >= 1
    assert after["tokenpool_operator_queue_pending"] == 0
    assert (
        after['tokenpool_operator_writes_total{resource="secrets",verb="created"}'] >= 2
    )  # user route and personal token
    # The personal-token Secret and the upstream route Secret.
    assert after['tokenpool_operator_writes_total{resource="secrets",verb="created"}'] >= 2
    assert after['tokenpool_operator_writes_total{resource="poolusers",verb="patched"}'] >= 1
    assert after['tokenpool_operator_events_total{reason="TokenGenerated",type="Normal"}'] >= 1

    token = pool.personal_token("metrics-user-zed")
    assert token is not None
    for secret in (token, GOOD_CREDENTIAL, "metrics-user-zed", "metrics-upstream", pool.ns):
        assert secret not in text
    # Bounded labels: every label value comes from a small fixed vocabulary.
    values = set(re.findall(r'="([^"]*)"', text))
    allowed = {"user", "token", "count", "success", "error", "created", "updated", "deleted", "patched"}
    allowed |= {"configmaps", "secrets", "poolusers", "upstreamtokens", "tokenallocations"}
    allowed |= {"Normal", "Warning", "TokenGenerated"}
    unexpected = {v for v in values if v not in allowed and not re.fullmatch(r"[0-9.e+-]+|\+Inf", v)}
    assert not unexpected, unexpected
