"""Property tests (hypothesis) of what the proxy does with text it does not control: OpenAI
requests converted for Augment, and NDJSON answer lines. Bad input is a clear error of one kind,
never an exception further down (which would be a 500)."""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenpool_proxy.openai_format import estimate_prompt_tokens, estimate_tokens
from tokenpool_proxy.providers.augment import AugmentProvider, MalformedLine, parse_line
from tokenpool_proxy.providers.openai_compat import OpenAIProvider
from tokenpool_proxy.schemas import BadRequest, parse_chat_request
from tokenpool_proxy.settings import ModelSpec

from tokenpool.upstream.signals import classify_http, notice_reason

EXAMPLES = int(os.environ.get("TOKENPOOL_FUZZ_EXAMPLES", "25")) * 8
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "bot", ""])
PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", ""])}, optional={"text": JSON}
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES}, optional={"content": st.text() | st.lists(PART, max_size=3) | JSON, "name": JSON}
)
BODY = st.fixed_dictionaries(
    {"model": st.sampled_from(["augment-chat", "augment-agent", ""]) | st.text(max_size=5)},
    optional={
        "messages": st.lists(MESSAGE, max_size=5) | JSON,
        "stream": JSON,
        "n": JSON,
        "max_tokens": JSON,
        "stream_options": JSON,
    },
)
PROVIDERS = (AugmentProvider(None, "ua"), OpenAIProvider(None))  # type: ignore[arg-type]  (prepare only)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(BODY)
def test_any_request_is_converted_or_refused_with_a_bad_request(body: dict[str, Any]) -> None:
    try:
        request = parse_chat_request(orjson.dumps(body))
    except BadRequest as exc:
        assert exc.message
        return
    assert estimate_prompt_tokens(request.messages) >= 2
    for provider in PROVIDERS:
        try:
            prepared = provider.prepare(request, ModelSpec(id=request.model or "x"))
        except BadRequest as exc:
            assert exc.message and exc.code
            continue
        upstream = orjson.loads(prepared)
        if isinstance(provider, AugmentProvider):
            assert isinstance(upstream["message"], str) and isinstance(upstream["chat_history"], list)
        else:
            assert upstream["stream"] is True and upstream["n"] in (None, 1) if "n" in upstream else True


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=200) | JSON.map(orjson.dumps))
def test_any_answer_line_is_parsed_or_malformed(line: bytes) -> None:
    try:
        text, finish, end, nodes = parse_line(line + b"\n")
    except MalformedLine:
        return
    assert isinstance(text, str) and end == (finish is not None)
    assert nodes is None or isinstance(nodes, list)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=100, max_value=599), st.text(max_size=600), st.none() | st.text(max_size=10))
def test_any_upstream_error_has_a_meaning(status: int, body: str, retry_after: str | None) -> None:
    signal = classify_http(status, body, retry_after)
    assert signal.verdict in ("unhealthy", "cooldown", "fail", "reject", "notice") and signal.reason
    if signal.verdict == "notice":
        assert notice_reason(body) == signal.reason and status in (402, 403, 429)
    if status in (400, 404, 413, 422):
        assert signal.verdict == "reject"  # the request's fault, whatever the body says


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(st.text())
def test_token_estimates_are_non_negative(text: str) -> None:
    assert 0 <= estimate_tokens(text) <= len(text)
