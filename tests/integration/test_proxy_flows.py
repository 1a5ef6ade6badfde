"""End-to-end flows: operator + proxy processes on the real API server + the fake upstream.

Custom resources are created as an admin would; the operator compiles them; the proxy serves.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest

from tests.support.plugin_client import PluginClient
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


def make_pool(pool, fake, names=("t1", "t2", "t3"), user="alice", **token_spec):
    for name in names:
        pool.credential(f"{name}-cred", f"cred-{name}-" + "0" * 40)
        pool.token(name, endpoint=fake.tenant(name), **token_spec)
    pool.user(user)
    pool.allocation(f"{user}-all", user=user, tokens=list(names))
    pt = wait_for(lambda: pool.personal_token(user), timeout=30, what="personal token generated")
    wait_for(
        lambda: pool.upstream_names(user) == list(names),
        timeout=30,
        what="route compiled",
    )
    return pt


def mixed_pool(pool, user, tokens):
    """UpstreamTokens of several providers, ``(name, provider, endpoint)`` each, all allocated to
    ``user``; returns the user's personal token."""
    for name, provider, endpoint in tokens:
        pool.credential(f"{name}-cred", f"cred-{name}-" + "0" * 40)
        pool.token(name, provider=provider, endpoint=endpoint)
    pool.user(user)
    pool.allocation(f"{user}-all", user=user, tokens=[name for name, _, _ in tokens])
    return wait_for(lambda: pool.personal_token(user), timeout=30, what="personal token generated")


@pytest.fixture
def stack(namespace, pool, operator_process, proxy_process, fake_upstream):
    operator_process(namespace)
    proxy = proxy_process(namespace, slot_wait_seconds=10, cooldown_base_seconds=60, read_timeout_seconds=2)
    return proxy


def served(proxy, pt, n):
    r = httpx.get(f"{proxy.url}/api/tokens", headers={"Authorization": f"Bearer {pt}"}, timeout=5)
    return r.status_code == 200 and r.json()["total_count"] == n


def answers(proxy, pt, model):
    body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": pt}, timeout=5)
    assert r.status_code in (200, 403), r.text  # 403: its token is not in the proxy's index yet
    return r.status_code == 200


def test_plugin_flow_validate_list_pick_delete(stack, pool, fake_upstream):
    pt = make_pool(pool, fake_upstream)
    wait_for(lambda: served(stack, pt, 3), timeout=10, what="proxy serves the new user")
    plugin = PluginClient(stack.url, pt)
    info = plugin.validate()
    assert info is not None and info["user"]["username"] == "alice" and info["user"]["status"] == "active"
    assert PluginClient(stack.url, "f" * 64).validate() is None
    used = [plugin.pick_and_use()["token"] for _ in range(3)]
    assert sorted(used) == sorted(f"cred-{n}-" + "0" * 40 for n in ("t1", "t2", "t3"))  # rotates
    tokens = plugin.list_tokens()
    assert all(t["usage_count"] == 1 and t["last_used"] for t in tokens)
    assert {t["tenant_url"] for t in tokens} == {fake_upstream.tenant(n) for n in ("t1", "t2", "t3")}


def test_openai_sdk_stream_and_non_stream(stack, pool, fake_upstream):
    pt = make_pool(pool, fake_upstream, names=("t1",))
    wait_for(lambda: served(stack, pt, 1), timeout=10, what="proxy serves the new user")
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=pt, max_retries=0)
    assert [m.id for m in client.models.list()] == ["augment-chat", "augment-agent"]
    out = client.chat.completions.create(model="augment-chat", messages=MSGS)
    assert out.choices[0].message.content == "Hello from the fake Augment upstream."
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    stream = client.chat.completions.create(
        model="augment-chat", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == out.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == out.usage.completion_tokens
    sent = fake_upstream.requests()[0]
    assert sent["token"] == "cred-t1-" + "0" * 40 and sent["body"]["user_guidelines"] == "Be brief."


# Notices ("blocked") are never failed over: tests/integration/test_fault_loop.py covers them.
@pytest.mark.parametrize("fault", ["unauthorized", "server_error", "drop", "malformed"])
def test_failover_with_one_of_three_tokens_failing(stack, pool, fake_upstream, fault):
    pt = make_pool(pool, fake_upstream)
    wait_for(lambda: served(stack, pt, 3), timeout=10, what="proxy serves the new user")
    fake_upstream.fault("cred-t2-" + "0" * 40, fault, after_chunks=0)
    client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=pt, max_retries=0)
    for i in range(9):
        out = client.chat.completions.create(model="augment-chat", messages=MSGS, stream=bool(i % 2))
        if i % 2:
            text = "".join(c.choices[0].delta.content or "" for c in out if c.choices)
        else:
            text = out.choices[0].message.content
        assert text == "Hello from the fake Augment upstream."
    assert fake_upstream.stats()["cred-t2-" + "0" * 40]["requests"] == 1  # avoided after its failure


def test_concurrency_caps_hold_under_parallel_load(stack, pool, fake_upstream):
    fake_upstream.configure(delay_ms=15, chunks=4)
    pt = make_pool(pool, fake_upstream, maxConcurrency=2)
    wait_for(lambda: served(stack, pt, 3), timeout=10, what="proxy serves the new user")

    def one(_: int) -> int:
        r = httpx.post(
            f"{stack.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {pt}"},
            json={"model": "augment-chat", "messages": MSGS},
            timeout=30,
        )
        return r.status_code

    with ThreadPoolExecutor(16) as pool_:
        codes = list(pool_.map(one, range(40)))
    assert codes == [200] * 40
    stats = fake_upstream.stats()
    assert sum(s["requests"] for s in stats.values()) == 40
    assert max(s["max_in_flight"] for s in stats.values()) == 2  # cap reached, never passed


def test_suspended_allocation_and_user(stack, pool, fake_upstream):
    pt = make_pool(pool, fake_upstream, names=("t1",))
    wait_for(lambda: served(stack, pt, 1), timeout=10, what="proxy serves the new user")
    chat = {"model": "augment-chat", "messages": MSGS}
    auth = {"Authorization": f"Bearer {pt}"}
    pool.patch("TokenAllocation", "alice-all", {"spec": {"suspended": True}})
    wait_for(lambda: served(stack, pt, 0), timeout=10, what="suspended allocation withdrawn")
    r = httpx.post(f"{stack.url}/v1/chat/completions", headers=auth, json=chat)
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_allocated_tokens"
    pool.patch("PoolUser", "alice", {"spec": {"suspended": True}})
    wait_for(lambda: httpx.get(f"{stack.url}/api/tokens", headers=auth).status_code == 403, timeout=10)
    r = httpx.post(f"{stack.url}/v1/chat/completions", headers=auth, json=chat)
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_suspended"


BAD_INPUT = [
    (b"{", 400),
    (b'{"model":"augment-chat","messages":"no"}', 400),
    (b'{"model":"augment-chat"}', 400),
    (b'{"model":"gpt-unknown","messages":[{"role":"user","content":"x"}]}', 404),
    (b'{"model":"augment-chat","messages":[{"role":"user","content":"' + b"x" * (5 << 20) + b'"}]}', 413),
]


def test_bad_input_is_4xx_in_openai_shape(stack, pool, fake_upstream):
    pt = make_pool(pool, fake_upstream, names=("t1",))
    wait_for(lambda: served(stack, pt, 1), timeout=10, what="proxy serves the new user")
    for body, status in BAD_INPUT:
        r = httpx.post(
            f"{stack.url}/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {pt}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == status, (body[:80], r.text)
        assert set(r.json()["error"]) >= {"message", "type", "code"}
        for headers in ({}, {"Authorization": "Bearer nope"}):
            r = httpx.post(f"{stack.url}/v1/chat/completions", content=body, headers=headers, timeout=30)
            assert r.status_code in (401, 413) and "error" in r.json()
    assert fake_upstream.requests() == []


def test_agent_clients_over_augment_and_an_anthropic_upstream(
    namespace, pool, operator_process, proxy_process, fake_upstream
):
    """Claude Code's path through operator-compiled routes: the Anthropic SDK's agent loop over an
    Augment token and over an UpstreamToken of provider Anthropic, and the OpenAI SDK's."""
    operator_process(namespace)
    models = '[{"id":"augment-agent"},{"id":"claude-x","provider":"Anthropic","upstream_model":"up-claude"}]'
    proxy = proxy_process(namespace, anthropic_models=models)
    tokens = [("t1", "Augment", fake_upstream.tenant("t1")), ("a1", "Anthropic", fake_upstream.url + "a1")]
    pt = mixed_pool(pool, "carol", tokens)
    wait_for(lambda: served(proxy, pt, 1), timeout=30, what="proxy serves the new user")  # its Augment token
    wait_for(lambda: answers(proxy, pt, "claude-x"), timeout=30, what="proxy serves the Anthropic token")
    fake_upstream.reset()
    tools = [{"name": "get_time", "input_schema": {"type": "object", "properties": {}}}]
    claude = anthropic.Anthropic(base_url=proxy.url, api_key=pt, max_retries=0)
    for model in ("augment-agent", "claude-x"):
        ask = [{"role": "user", "content": "call get_time"}]
        with claude.messages.stream(model=model, max_tokens=100, messages=ask, tools=tools) as s:
            first = s.get_final_message()
        [use] = [b for b in first.content if b.type == "tool_use"]
        assert first.stop_reason == "tool_use" and use.name == "get_time"
        result = {"type": "tool_result", "tool_use_id": use.id, "content": "12:00"}
        ask += [{"role": "assistant", "content": [use.model_dump()]}, {"role": "user", "content": [result]}]
        final = claude.messages.create(model=model, max_tokens=100, messages=ask, tools=tools)
        assert final.content[0].text == f"Tool results: {use.id}=12:00"
    tokens = [r["token"] for r in fake_upstream.requests()]
    assert tokens == ["cred-t1-" + "0" * 40] * 2 + ["cred-a1-" + "0" * 40] * 2
    oai = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=pt, max_retries=0)
    out = oai.chat.completions.create(
        model="augment-agent",
        messages=[{"role": "user", "content": "call get_time"}],
        tools=[{"type": "function", "function": {"name": "get_time"}}],
    )
    assert out.choices[0].finish_reason == "tool_calls"


def test_credits_an_upstream_reports_are_counted_per_user_token_and_day(
    namespace, pool, operator_process, proxy_process, fake_upstream
):
    """An OpenAI-compatible upstream that prices its answers (``usage.cost``): what each answer
    cost lands in the PoolUser's and the UpstreamToken's status, today and in the daily history,
    summed exactly across stream and non-stream answers; an Augment answer (no price) adds none."""
    operator_process(namespace)
    models = '[{"id":"augment-chat"},{"id":"gpt-x","provider":"OpenAI","upstream_model":"up-gpt"}]'
    proxy = proxy_process(namespace, models=models, usage_flush_interval_seconds=1)
    tokens = [("t1", "Augment", fake_upstream.tenant("t1")), ("o1", "OpenAI", fake_upstream.url + "o1/")]
    pt = mixed_pool(pool, "dora", tokens)
    fake_upstream.fault("cred-o1-" + "0" * 40, cost=0.1)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=pt, max_retries=0)

    def answered(model: str, stream: bool) -> bool:
        try:
            out = client.chat.completions.create(model=model, messages=MSGS, stream=stream)
        except openai.PermissionDeniedError:  # its token is not in the proxy's index yet
            return False
        if stream:
            list(out)
        return True

    wait_for(lambda: answered("gpt-x", False), timeout=30, what="the OpenAI-compatible token serves")
    assert answered("gpt-x", True) and answered("gpt-x", True)
    assert answered("augment-chat", False)

    def credits(kind: str, name: str) -> tuple[object, object, object]:
        usage = (pool.get(kind, name).get("status") or {}).get("usage") or {}
        daily = usage.get("daily") or [{}]
        return (
            (usage.get("total") or {}).get("credits"),
            (usage.get("today") or {}).get("credits"),
            daily[-1].get("credits"),
        )

    wait_for(
        lambda: credits("PoolUser", "dora") == (0.3, 0.3, 0.3), timeout=30, what="the user's credits written"
    )
    assert credits("UpstreamToken", "o1") == (0.3, 0.3, 0.3)  # 0.1 three times: no float drift
    assert credits("UpstreamToken", "t1") == (None, None, None)  # Augment answers carry no price
    by_token = {u["name"]: u for u in pool.get("PoolUser", "dora")["status"]["usage"]["todayByUpstream"]}
    assert by_token["o1"]["credits"] == 0.3 and "credits" not in by_token["t1"]
