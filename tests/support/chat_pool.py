"""An in-process proxy over Augment tokens of the fake upstream, and the OpenAI SDK pointed at it:
the set-up of the chat tests (tests/unit/test_proxy_*.py)."""

from __future__ import annotations

from typing import Any

import openai

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route

PT = new_personal_token()  # the personal token of "alice", the one user
MSGS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "q2"},
]


async def augment_pool(inprocess_proxy: Any, fake: Any, n: int = 3, **settings: Any) -> Any:
    """``n`` Augment tokens ``t0``… (credentials ``tok0``…) on the fake, all allocated to alice."""
    ups = [upstream_route(f"t{i}", fake.tenant(f"t{i}"), token=f"tok{i}") for i in range(n)]
    settings.setdefault("cooldown_base_seconds", 60)
    return await inprocess_proxy(
        users=[user_route("alice", PT, [u.name for u in ups])], upstreams=ups, **settings
    )


def sdk(proxy: Any) -> openai.AsyncOpenAI:
    """The OpenAI SDK as alice, over the in-process proxy's own HTTP client."""
    return openai.AsyncOpenAI(base_url="http://proxy/v1", api_key=PT, http_client=proxy.client, max_retries=0)
