"""The proxy process against the real API server, fed with compiled routes written directly
(as the operator would write them): readiness, propagation, deletes, suspension, isolation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route
from tests.support.waiting import wait_for
from tokenpool.dev.controlplane import free_port

pytestmark = pytest.mark.integration


def status_of(url: str, pt: str) -> int:
    return httpx.get(f"{url}/api/tokens", headers={"Authorization": f"Bearer {pt}"}, timeout=5).status_code


def test_new_user_usable_within_a_second_and_deleted_one_stops(
    namespace, proxy_process, routes_in_cluster, fake_upstream
):
    routes = routes_in_cluster(namespace)
    proxy = proxy_process(namespace)
    pt = new_personal_token()
    assert status_of(proxy.url, pt) == 401

    routes.put_upstream(upstream_route("t1", fake_upstream.tenant("t1"), token="cred-1"))
    started = time.monotonic()
    routes.put_user(user_route("alice", pt, ["t1"]))
    wait_for(lambda: status_of(proxy.url, pt) == 200, timeout=30, interval=0.02, what="new user served")
    print(f"\nnew user served {time.monotonic() - started:.2f}s after its route was written")
    tokens = httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {pt}"}).json()["tokens"]
    assert [t["token"] for t in tokens] == ["cred-1"]

    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=pt, max_retries=0)
    out = client.chat.completions.create(model="augment-chat", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "Hello from the fake Augment upstream."

    started = time.monotonic()
    routes.delete_user("alice")
    wait_for(lambda: status_of(proxy.url, pt) == 401, timeout=30, interval=0.02, what="deleted user refused")
    print(f"deleted user refused {time.monotonic() - started:.2f}s after its route was deleted")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="augment-chat", messages=[{"role": "user", "content": "hi"}])


def test_suspension_credential_change_and_isolation(
    namespace, proxy_process, routes_in_cluster, fake_upstream
):
    routes = routes_in_cluster(namespace)
    pa, pb = new_personal_token(), new_personal_token()
    routes.put_upstream(upstream_route("ta", fake_upstream.tenant("a"), token="cred-a"))
    routes.put_upstream(upstream_route("tb", fake_upstream.tenant("b"), token="cred-b"))
    routes.put_user(user_route("alice", pa, ["ta"]))
    routes.put_user(user_route("bob", pb, ["tb"]))
    proxy = proxy_process(namespace)  # routes exist before start: served right after /readyz

    def tokens(pt: str) -> list[str]:
        r = httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {pt}"})
        return (
            [t["token"] for t in r.json().get("tokens", [])] if r.status_code == 200 else [str(r.status_code)]
        )

    assert tokens(pa) == ["cred-a"] and tokens(pb) == ["cred-b"]  # A never sees B's tokens
    r = httpx.delete(f"{proxy.url}/api/tokens/cred-b", headers={"Authorization": f"Bearer {pa}"})
    assert r.status_code == 404

    routes.put_upstream(upstream_route("ta", fake_upstream.tenant("a"), token="cred-a2"))
    wait_for(lambda: tokens(pa) == ["cred-a2"], timeout=5, what="rotated credential served")

    routes.put_upstream(upstream_route("ta", fake_upstream.tenant("a"), token="cred-a2", suspended=True))
    wait_for(lambda: tokens(pa) == [], timeout=5, what="suspended upstream withdrawn")

    routes.put_user(user_route("bob", pb, ["tb"], suspended=True))
    wait_for(lambda: tokens(pb) == ["403"], timeout=5, what="suspended user refused")
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {pb}"},
        json={"model": "augment-chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_suspended"


def test_access_log_line_without_secrets(namespace, proxy_process, routes_in_cluster, fake_upstream):
    routes = routes_in_cluster(namespace)
    pt = new_personal_token()
    routes.put_upstream(upstream_route("t1", fake_upstream.tenant("t1"), token="cred-secret-1"))
    routes.put_user(user_route("alice", pt, ["t1"]))
    proxy = proxy_process(namespace)
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {pt}", "x-request-id": "rid-42"},
        json={"model": "augment-chat", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "rid-42"
    httpx.delete(f"{proxy.url}/api/tokens/cred-secret-1", headers={"Authorization": f"Bearer {pt}"})
    line = wait_for(lambda: next((ln for ln in proxy.log().splitlines() if "rid-42" in ln), None), timeout=5)
    entry = json.loads(line)
    assert entry["user"] == "alice" and entry["upstream"] == "t1" and entry["model"] == "augment-chat"
    assert entry["status"] == 200 and entry["retries"] == 0 and entry["latency_ms"] > 0
    log = proxy.log(1000)
    assert "cred-secret-1" not in log and pt not in log


def test_not_ready_while_the_api_server_cannot_be_reached(namespace, proxy_process, control_plane, tmp_path):
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    proxy = proxy_process(namespace, wait=False, kubeconfig=str(path), watch_retry_seconds=0.2)
    wait_for(lambda: _code(f"{proxy.ops_url}/healthz") == 200, timeout=20, what="proxy alive")
    assert _code(f"{proxy.ops_url}/readyz") == 503
    assert httpx.get(f"{proxy.url}/health").json()["status"] == "starting"
    wait_for(lambda: "serving the last known routes" in proxy.log(), timeout=10)
    assert _code(f"{proxy.ops_url}/readyz") == 503


def _code(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
