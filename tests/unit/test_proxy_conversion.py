"""OpenAI ⇄ Augment conversion: request by role, NDJSON stream back, OpenAI chunks out."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenpool_proxy import openai_format as fmt
from tokenpool_proxy.openai_conversion import conversation_from_openai
from tokenpool_proxy.providers.augment import MalformedLine, parse_line
from tokenpool_proxy.providers.augment_request import build_chat_body
from tokenpool_proxy.providers.base import MAX_LINE_BYTES, LineTooLong, split_lines
from tokenpool_proxy.schemas import BadRequest, ChatRequest, parse_chat_request
from tokenpool_proxy.settings import ModelSpec


def req(*messages: dict, model: str = "augment-chat", **kw) -> ChatRequest:
    return ChatRequest.model_validate({"model": model, "messages": list(messages), **kw})


def msgs(r: ChatRequest) -> ChatRequest:
    return r


def convert_messages(r: ChatRequest) -> tuple[str, list[tuple[str, str]], str]:
    """(guidelines, [(request, answer)] history, final message) of the conversation."""
    conv = conversation_from_openai(r)
    return (
        "\n\n".join(conv.guidelines),
        [(ex.message, ex.answer) for ex in conv.history],
        conv.current.message,
    )


def test_system_messages_become_guidelines_wherever_they_are():
    r = req(
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "again"},
    )
    guidelines, history, message = convert_messages(msgs(r))
    assert guidelines == "Be brief.\n\nAnswer in French."
    assert history == []
    assert message == "hi\n\nagain"  # consecutive user messages are joined, none dropped


def test_multi_turn_pairs_by_role_not_position():
    r = req(
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "assistant", "content": "a1b"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
    )
    _, history, message = convert_messages(msgs(r))
    assert history == [("q1", "a1\n\na1b"), ("q2", "a2")]
    assert message == "q3"


def test_leading_assistant_turn_pairs_with_an_empty_request():
    _, history, message = convert_messages(
        msgs(req({"role": "assistant", "content": "Welcome"}, {"role": "user", "content": "hi"}))
    )
    assert history == [("", "Welcome")]
    assert message == "hi"


def test_content_parts_text_is_concatenated():
    r = req({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert convert_messages(msgs(r))[2] == "ab"


def test_image_links_are_refused_with_a_clear_error():
    r = req({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]})
    with pytest.raises(BadRequest, match="data: URLs"):
        convert_messages(msgs(r))


def test_conversation_must_end_with_a_user_turn():
    with pytest.raises(BadRequest, match="last message"):
        convert_messages(msgs(req({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})))


def test_chat_body_fields_and_modes():
    r = req(
        {"role": "system", "content": "S"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    )
    body = build_chat_body(r, ModelSpec(id="augment-chat"))
    assert body["message"] == "q2"
    assert body["mode"] == "CHAT"
    assert body["user_guidelines"] == "S"
    assert "model" not in body  # upstream default
    item = body["chat_history"][0]
    assert item["request_message"] == "q1" and item["response_text"] == "a1"
    assert item["response_nodes"][0]["content"] == "a1" and item["request_nodes"] == []
    assert body["blobs"] == {"checkpoint_id": None, "added_blobs": [], "deleted_blobs": []}
    assert body["feature_detection_flags"] == {"support_raw_output": True}
    agent = build_chat_body(r, ModelSpec(id="x-agent", upstream_model="claude-x"))
    assert agent["mode"] == "AGENT" and agent["model"] == "claude-x"
    assert build_chat_body(r, ModelSpec(id="x-agent", mode="CHAT"))["mode"] == "CHAT"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"text":"hello"}\n', ("hello", None, False, None)),
        (b'{"text":"","stop_reason":1}\n', ("", "stop", True, None)),
        (b'{"text":"end","stop_reason":2}\n', ("end", "length", True, None)),
        (b'{"text":"","stop_reason":3}\n', ("", "tool_calls", True, None)),
        (b'{"text":"","stop_reason":"STREAM_CANCELLED"}\n', ("", "stop", True, None)),
        (b'{"text":"","stop_reason":[1]}\n', ("", "stop", True, None)),
        (b'{"text":"x","done":true}\n', ("x", "stop", True, None)),
        (b'{"text":null,"nodes":[]}\n', ("", None, False, None)),
        (b'{"text":"","nodes":[{"type":5}]}\n', ("", None, False, [{"type": 5}])),
        (b"\n", ("", None, False, None)),
    ],
)
def test_ndjson_lines(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", [b"not json\n", b"[1,2]\n", b'"text"\n', b"<html>502</html>\n"])
def test_malformed_ndjson_lines_are_an_error_not_an_empty_answer(line):
    with pytest.raises(MalformedLine):
        parse_line(line)


def _split_as_arrived(body: bytes, cuts: list[int]) -> list[bytes]:
    lines, tail = [], b""
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        batch, tail = split_lines(body[start:end], tail)
        lines += batch
    batch, tail = split_lines(b"", tail)
    return lines + batch


@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    last_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
)
def test_lines_split_from_what_arrived_are_the_lines_sent_however_the_body_was_cut(lines, last_newline, cuts):
    body = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    cuts = sorted({c for c in cuts if c <= len(body)})
    got = _split_as_arrived(body, cuts)
    # (a body that ends without a newline still ends its last line; empty lines are ignored)
    assert [x for x in got if x] == [x for x in lines if x]


def test_a_line_longer_than_the_limit_is_refused_even_unfinished():
    assert _split_as_arrived(b"a" * MAX_LINE_BYTES + b"\nb", [70_000]) == [b"a" * MAX_LINE_BYTES, b"b"]
    with pytest.raises(LineTooLong):
        split_lines(b"{" + b"a" * MAX_LINE_BYTES + b"}\n", b"")
    with pytest.raises(LineTooLong):  # the memory of an unfinished line is bounded too
        split_lines(b"a" * 10, b"a" * MAX_LINE_BYTES)


def test_stream_chunks_role_first_then_finish_usage_done():
    w = fmt.ChunkWriter("chatcmpl-1", "augment-chat")
    first = orjson.loads(w.content("Hel")[6:])
    second = orjson.loads(w.content("lo")[6:])
    last = orjson.loads(w.finish("length")[6:])
    usage = orjson.loads(w.usage(3, 2)[6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert second["choices"][0]["delta"] == {"content": "lo"}
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert usage["choices"] == [] and usage["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
    }
    assert first["object"] == "chat.completion.chunk" and first["model"] == "augment-chat"
    assert w.DONE == b"data: [DONE]\n\n"


def test_token_estimates_are_consistent_and_count_cjk_per_character():
    assert fmt.estimate_tokens("") == 0
    assert fmt.estimate_tokens("abcd") == 1
    assert fmt.estimate_tokens("abcde") == 2
    assert fmt.estimate_tokens("你好") == 2
    r = req({"role": "system", "content": "abcd"}, {"role": "user", "content": "abcd"})
    assert fmt.estimate_prompt_tokens(r.messages) == 2 + (1 + 4) * 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"model":"m"}', "messages"),
        (b'{"model":"m","messages":[]}', "messages"),
        (b'{"model":"m","messages":"hi"}', "messages"),
        (b'{"model":"m","messages":[{"role":"wizard","content":"x"}]}', "role"),
        (b'{"model":5,"messages":[{"role":"user","content":"x"}]}', "model"),
        (b'{"model":"m","stream":"maybe","messages":[{"role":"user","content":"x"}]}', "stream"),
    ],
)
def test_bad_requests_are_described(body, needle):
    with pytest.raises(BadRequest) as info:
        parse_chat_request(body)
    assert needle in info.value.message
