"""examples/ applied as they are (kubectl apply) converge to the documented state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_apply_and_converge(pool: Pool, operator_process, kubectl) -> None:
    op = operator_process(pool.ns)
    kubectl("apply", "-n", pool.ns, "-f", str(EXAMPLES))
    for user in ("admin", "alice", "bob"):
        wait_for(lambda u=user: pool.reason(c.KIND_USER, u) == "Ready", timeout=30, what=f"{user} Ready")
    for alloc in ("admin-all", "alice-dedicated", "alice-shared", "bob-shared"):
        wait_for(lambda a=alloc: pool.reason(c.KIND_ALLOCATION, a) == "Granted", timeout=30, what=f"{alloc}")
    op.wait_idle()
    for token in ("augment-1", "augment-2", "augment-3"):
        assert pool.reason(c.KIND_UPSTREAM, token) == "Ready"
        assert pool.upstream_route(token) is not None
    assert pool.upstream_names("admin") == ["augment-1", "augment-2"]
    assert pool.upstream_names("alice")[0] == "augment-3"  # priority 1 before the shared pick
    assert len(pool.upstream_names("bob")) == 2
    assert pool.get(c.KIND_UPSTREAM, "augment-2")["status"]["allocations"] <= 2  # its maxAllocations
    assert pool.get(c.KIND_UPSTREAM, "augment-3")["status"]["allocations"] == 1  # exclusive
    assert pool.user_route("bob").token_quota == 3 and pool.user_route("alice").token_quota == 2
    out = kubectl("get", "pu,ut,ta", "-n", pool.ns).stdout
    assert "alice" in out and "augment-1" in out and "bob-shared" in out
