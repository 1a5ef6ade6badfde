"""Property tests (hypothesis) of the conversions between the client dialects and Augment.

* Request side: any well-formed agent conversation (system prompts, text, images, parallel tool
  calls, tool results, errors) in OpenAI's or Anthropic's words becomes an Augment body from
  which the whole conversation can be read back: nothing lost, nothing reordered.
* Any JSON body at all either converts or is a :class:`BadRequest` (a 400), never another error;
  a well-formed body with one field of the wrong type is a 400 naming that field.
* Answer side: any Augment answer (text pieces, tool calls with their start nodes, any stop)
  reaches OpenAI and Anthropic SDK clients whole, the same streamed and not streamed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tokenpool_proxy.messages_schema import parse_messages_request
from tokenpool_proxy.providers.augment_request import build_chat_body
from tokenpool_proxy.schemas import BadRequest, parse_chat_request
from tokenpool_proxy.settings import ModelSpec

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route

MODEL = ModelSpec(id="m")
FORMATS = {"image/png": 1, "image/jpeg": 2, "image/gif": 3, "image/webp": 4}
texts = st.text(max_size=20)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_-]{0,12}", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=3)
images = st.tuples(
    st.sampled_from(sorted(FORMATS)), st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
)


@dataclass
class User:
    texts: list[str]
    images: list[tuple[str, str]]


@dataclass
class Assistant:
    text: str
    calls: list[tuple[str, str, dict[str, Any]]]  # id, name, arguments


@dataclass
class Results:
    results: list[tuple[str, str, bool]]  # tool call id, content, is_error


@dataclass
class Script:
    system: list[str]
    turns: list[User | Assistant | Results]
    tools: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


users = st.builds(User, st.lists(texts, max_size=3), st.lists(images, max_size=2)).filter(
    lambda u: u.texts or u.images
)


@st.composite
def assistants(draw: Any) -> Assistant:
    call_ids = draw(st.lists(ids, max_size=3, unique=True))
    return Assistant(draw(texts), [(i, draw(names), draw(json_objects)) for i in call_ids])


@st.composite
def scripts(draw: Any) -> Script:
    turns: list[User | Assistant | Results] = [draw(users)]
    for _ in range(draw(st.integers(0, 3))):
        answer = draw(assistants())
        turns.append(answer)
        if answer.calls:
            turns.append(Results([(cid, draw(texts), draw(st.booleans())) for cid, _, _ in answer.calls]))
            if draw(st.booleans()):
                turns.append(draw(users))
        else:
            turns.append(draw(users))
    tools = draw(st.lists(st.tuples(names, texts, json_objects), max_size=3, unique_by=lambda t: t[0]))
    return Script(draw(st.lists(texts, max_size=2)), turns, tools)


# -- the two client dialects ----------------------------------------------------------------------
def openai_body(s: Script) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": t} for t in s.system]
    for turn in s.turns:
        if isinstance(turn, User):
            parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in turn.texts]
            parts += [
                {"type": "image_url", "image_url": {"url": f"data:{m};base64,{d}"}} for m, d in turn.images
            ]
            messages.append({"role": "user", "content": parts})
        elif isinstance(turn, Assistant):
            calls = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, n, a in turn.calls
            ]
            messages.append(
                {
                    "role": "assistant",
                    "content": turn.text or None,
                    **({"tool_calls": calls} if calls else {}),
                }
            )
        else:
            messages += [{"role": "tool", "tool_call_id": i, "content": c} for i, c, _ in turn.results]
    tools = [
        {"type": "function", "function": {"name": n, "description": d, "parameters": p}}
        for n, d, p in s.tools
    ]
    return {"model": "m", "messages": messages, **({"tools": tools} if tools else {})}


def anthropic_body(s: Script) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in s.turns:
        if isinstance(turn, User):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": t} for t in turn.texts]
            blocks += [
                {"type": "image", "source": {"type": "base64", "media_type": m, "data": d}}
                for m, d in turn.images
            ]
            messages.append({"role": "user", "content": blocks})
        elif isinstance(turn, Assistant):
            blocks = [{"type": "text", "text": turn.text}] if turn.text or not turn.calls else []
            blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in turn.calls]
            messages.append({"role": "assistant", "content": blocks})
        else:
            results = [
                {"type": "tool_result", "tool_use_id": i, "content": c, "is_error": e}
                for i, c, e in turn.results
            ]
            messages.append({"role": "user", "content": results})
    tools = [{"name": n, "description": d, "input_schema": p} for n, d, p in s.tools]
    system = [{"type": "text", "text": t} for t in s.system]
    return {
        "model": "m",
        "max_tokens": 10,
        "system": system,
        "messages": messages,
        **({"tools": tools} if tools else {}),
    }


# -- what must come out -------------------------------------------------------------------------
def expected(s: Script, dialect: str) -> list[dict[str, Any]]:
    """The exchanges Augment must see: per exchange the user side's text, images and results,
    and the answer's text and calls. Texts of one message join with "" (OpenAI parts) or a blank
    line (Anthropic blocks); messages of one side join with a blank line (docs/proxy.md)."""
    joiner = "" if dialect == "openai" else "\n\n"
    exchanges: list[dict[str, Any]] = []
    current: dict[str, Any] = {"texts": [], "images": [], "results": [], "answer": None, "calls": None}
    for turn in s.turns:
        if isinstance(turn, Assistant):
            current["answer"] = turn.text if (turn.text or not turn.calls) else ""
            current["calls"] = [(i, n, a) for i, n, a in turn.calls]
            exchanges.append(current)
            current = {"texts": [], "images": [], "results": [], "answer": None, "calls": None}
        elif isinstance(turn, User):
            if turn.texts:
                current["texts"].append(joiner.join(turn.texts))
            current["images"] += [(FORMATS[m], d) for m, d in turn.images]
        else:
            current["results"] += [(i, c, e if dialect == "anthropic" else False) for i, c, e in turn.results]
    exchanges.append(current)
    for ex in exchanges:
        ex["text"] = "\n\n".join(ex.pop("texts"))
    return exchanges


def read_back(body: dict[str, Any]) -> list[dict[str, Any]]:
    def user_side(text: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "text": text,
            "images": [
                (n["image_node"]["format"], n["image_node"]["image_data"]) for n in nodes if n["type"] == 2
            ],
            "results": [
                (r["tool_use_id"], r["content"], r["is_error"])
                for n in nodes
                if n["type"] == 1
                for r in [n["tool_result_node"]]
            ],
        }

    out = []
    for item in body["chat_history"]:
        ex = user_side(item["request_message"], item["request_nodes"])
        ex["answer"] = item["response_text"]
        uses = [n["tool_use"] for n in item["response_nodes"] if n["type"] == 5]
        ex["calls"] = [(u["tool_use_id"], u["tool_name"], json.loads(u["input_json"])) for u in uses]
        out.append(ex)
    out.append({**user_side(body["message"], body["nodes"]), "answer": None, "calls": None})
    return out


@settings(max_examples=150, deadline=None)
@given(scripts())
def test_openai_conversations_reach_augment_whole(s: Script) -> None:
    body = build_chat_body(parse_chat_request(orjson.dumps(openai_body(s))), MODEL)
    assert read_back(body) == expected(s, "openai")
    assert body["user_guidelines"] == "\n\n".join(s.system)
    assert [
        (d["name"], d["description"], json.loads(d["input_schema_json"])) for d in body["tool_definitions"]
    ] == s.tools


@settings(max_examples=150, deadline=None)
@given(scripts())
def test_anthropic_conversations_reach_augment_whole(s: Script) -> None:
    body = build_chat_body(parse_messages_request(orjson.dumps(anthropic_body(s))), MODEL)
    assert read_back(body) == expected(s, "anthropic")
    assert body["user_guidelines"] == "\n\n".join(s.system)
    assert [
        (d["name"], d["description"], json.loads(d["input_schema_json"])) for d in body["tool_definitions"]
    ] == s.tools


# -- anything else: a 400, never another error ----------------------------------------------------
message_like = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system"]) | json_values},
    optional={"content": json_values, "tool_calls": json_values, "tool_call_id": json_values},
)
bodies = st.fixed_dictionaries(
    {"model": st.just("m") | json_values, "messages": st.lists(message_like, max_size=4) | json_values},
    optional={
        "tools": json_values,
        "tool_choice": json_values,
        "max_tokens": json_values,
        "system": json_values,
        "stream": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=bodies | json_values, dialect=st.sampled_from(["openai", "anthropic"]))
def test_any_json_converts_or_is_a_bad_request(body: Any, dialect: str) -> None:
    parse = parse_chat_request if dialect == "openai" else parse_messages_request
    try:
        build_chat_body(parse(orjson.dumps(body)), MODEL)
    except BadRequest as exc:
        assert exc.message


# Fields the proxy reads, each replaced by a value of the wrong type: (path in the body, value).
WRONG = st.sampled_from([5, "", {"x": 1}, [1], None, True])


def still_valid(dialect: str, path: tuple[Any, ...], value: Any) -> bool:
    """Values of another type that the field takes all the same."""
    field = path[-1]
    if field == "content" and len(path) == 3:  # a message's content
        return value == "" or (dialect == "openai" and value is None)
    if field in ("text", "arguments") or (dialect == "anthropic" and field in ("id", "name", "tool_use_id")):
        return value == ""
    return field == "max_tokens" and value is True  # pydantic reads true as 1


def typed_paths(body: dict[str, Any], dialect: str) -> list[tuple[Any, ...]]:
    paths: list[tuple[Any, ...]] = [("model",), ("messages",)]
    for i, m in enumerate(body["messages"]):
        paths += [("messages", i, "role"), ("messages", i, "content")]
        if isinstance(m["content"], list):
            for j, part in enumerate(m["content"]):
                paths.append(("messages", i, "content", j, "type"))
                paths += [
                    ("messages", i, "content", j, k)
                    for k in ("text", "image_url", "source", "id", "name", "input", "tool_use_id")
                    if k in part
                ]
        for j, _ in enumerate(m.get("tool_calls") or ()):
            paths += [
                ("messages", i, "tool_calls", j, "id"),
                ("messages", i, "tool_calls", j, "function", "arguments"),
            ]
        if "tool_call_id" in m:
            paths.append(("messages", i, "tool_call_id"))
    if dialect == "anthropic":
        paths.append(("max_tokens",))
    return paths


@settings(max_examples=300, deadline=None)
@given(s=scripts(), dialect=st.sampled_from(["openai", "anthropic"]), data=st.data())
def test_one_field_of_the_wrong_type_is_a_400_naming_it(s: Script, dialect: str, data: Any) -> None:
    body = openai_body(s) if dialect == "openai" else anthropic_body(s)
    path = data.draw(st.sampled_from(typed_paths(body, dialect)))
    wrong = data.draw(WRONG)
    target = body
    for key in path[:-1]:
        target = target[key]
    assume(type(target[path[-1]]) is not type(wrong) and not still_valid(dialect, path, wrong))
    target[path[-1]] = wrong
    parse = parse_chat_request if dialect == "openai" else parse_messages_request
    with pytest.raises(BadRequest) as info:
        build_chat_body(parse(orjson.dumps(body)), MODEL)
    assert info.value.message
    if info.value.param and path[0] != "messages":
        assert info.value.param.startswith(path[0])


# -- the answer side: Augment lines → both SDKs, stream and not -----------------------------------
PT = new_personal_token()


@st.composite
def answers(draw: Any) -> tuple[list[str], str, list[tuple[str, str, dict[str, Any]]], Any]:
    """(NDJSON lines, text, calls, stop_reason) of an Augment answer."""
    lines, text, calls, node_id = [], "", [], 0
    used: set[str] = set()
    for kind in draw(st.lists(st.sampled_from(["text", "call"]), max_size=6)):
        if kind == "text":
            piece = draw(st.text(min_size=1, max_size=15))
            text += piece
            lines.append(json.dumps({"text": piece, "unknown_blob_names": []}))
            continue
        cid = draw(ids.filter(lambda i: i not in used))
        used.add(cid)
        call = (cid, draw(names), draw(json_objects))
        calls.append(call)
        use = {"tool_use_id": cid, "tool_name": call[1], "input_json": json.dumps(call[2])}
        if draw(st.booleans()):  # announced first, as Augment does
            lines.append(
                json.dumps(
                    {"text": "", "nodes": [{"id": node_id, "type": 7, "tool_use": {**use, "input_json": ""}}]}
                )
            )
        lines.append(
            json.dumps(
                {"text": "", "nodes": [{"id": node_id + 1, "type": 5, "content": "", "tool_use": use}]}
            )
        )
        node_id += 2
    stop = draw(st.sampled_from([1, 2, 3, None]))
    if stop is not None:
        lines.append(json.dumps({"text": "", "stop_reason": stop}))
    return lines, text, calls, stop


def finish_of(stop: Any, calls: list[Any]) -> str:
    if stop == 2:
        return "length"
    return "tool_calls" if calls or stop == 3 else "stop"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=answers())
async def test_augment_answers_reach_both_sdks_whole(inprocess_proxy, fake_upstream, answer) -> None:
    lines, text, calls, stop = answer
    fake_upstream.configure(raw_lines=lines)
    proxy = await inprocess_proxy(
        users=[user_route("alice", PT, ["t0"])],
        upstreams=[upstream_route("t0", fake_upstream.tenant("t0"), token="tok0")],
    )
    finish = finish_of(stop, calls)
    oai = openai.AsyncOpenAI(base_url="http://proxy/v1", api_key=PT, http_client=proxy.client, max_retries=0)
    ask = {"model": "augment-chat", "messages": [{"role": "user", "content": "go"}]}
    whole = (await oai.chat.completions.create(**ask)).choices[0]
    assert (whole.message.content or "") == text and whole.finish_reason == finish
    got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in whole.message.tool_calls or ()]
    assert got == calls
    streamed_text, streamed_calls, streamed_finish = "", {}, None
    async for chunk in await oai.chat.completions.create(**ask, stream=True):
        for choice in chunk.choices:
            streamed_text += choice.delta.content or ""
            for d in choice.delta.tool_calls or ():
                call = streamed_calls.setdefault(d.index, ["", "", ""])
                call[0] += d.id or ""
                call[1] += d.function.name or ""
                call[2] += d.function.arguments or ""
            streamed_finish = choice.finish_reason or streamed_finish
    assert (streamed_text, streamed_finish) == (text, finish)
    assert [(c[0], c[1], json.loads(c[2])) for _, c in sorted(streamed_calls.items())] == calls

    import httpx2

    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=proxy.app), base_url="http://proxy")
    claude = anthropic.AsyncAnthropic(base_url="http://proxy", api_key=PT, http_client=client, max_retries=0)
    ask = {"model": "augment-chat", "max_tokens": 10, "messages": [{"role": "user", "content": "go"}]}
    whole_msg = await claude.messages.create(**ask)
    async with claude.messages.stream(**ask) as ms:
        streamed_msg = await ms.get_final_message()
    stop_reason = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}[finish]
    for msg in (whole_msg, streamed_msg):
        assert "".join(b.text for b in msg.content if b.type == "text") == text
        assert [(b.id, b.name, b.input) for b in msg.content if b.type == "tool_use"] == calls
        assert msg.stop_reason == stop_reason
    await client.aclose()


# -- whatever an upstream sends: relayed, ignored or an upstream failure, never a crash -----------
EVENT_TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
]
upstream_events = st.fixed_dictionaries(
    {"type": st.sampled_from(EVENT_TYPES)},
    optional={
        "index": st.integers(0, 3) | json_values,
        "message": json_objects | json_values,
        "content_block": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "tool_use", "thinking"])},
            optional={"id": json_values, "name": json_values, "citations": json_values},
        )
        | json_values,
        "delta": st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["text_delta", "input_json_delta", "thinking_delta", "citations_delta", "signature_delta"]
                )
                | json_values
            },
            optional={
                "text": json_values,
                "partial_json": json_values,
                "stop_reason": json_values,
                "citation": json_values,
            },
        )
        | json_values,
        "usage": json_objects | json_values,
        "error": json_objects | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(upstream_events | json_values, max_size=12), st.booleans())
def test_any_anthropic_upstream_events_are_relayed_or_fail_cleanly(events: list[Any], stream: bool) -> None:
    from tokenpool_proxy.anthropic_format import AnthropicDialect
    from tokenpool_proxy.messages_schema import parse_messages_request
    from tokenpool_proxy.providers.anthropic_compat import EventReader
    from tokenpool_proxy.providers.base import UpstreamFailure

    request = parse_messages_request(
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}'
    )
    dialect, reader = AnthropicDialect(), EventReader()
    writer = dialect.writer(request)
    pieces = []
    try:
        for event in events:
            piece = reader.piece(b"x", orjson.dumps(event))
            if piece is not None:
                pieces.append(piece)
                assert isinstance(writer.other(piece), bytes)
    except UpstreamFailure as failure:
        assert failure.verdict in ("cooldown", "fail", "unhealthy", "reject") and failure.reason
        return
    assert isinstance(writer.end("stop", 1, 1), bytes)
    message = dialect.answer(request, pieces, "stop", 1, 1)
    assert message["model"] == "m" and isinstance(message["content"], list)


@settings(max_examples=300, deadline=None)
@given(
    json_values
    | st.fixed_dictionaries(
        {"choices": st.lists(json_objects | json_values, max_size=3)}, optional={"usage": json_values}
    )
)
def test_any_openai_upstream_chunk_is_a_piece_or_nothing(chunk: Any) -> None:
    from tokenpool_proxy.providers.openai_compat import parse_event

    piece = parse_event(orjson.dumps(chunk))
    assert piece is None or isinstance(piece.text, str)
    assert piece is None or piece.credits is None or (isinstance(piece.credits, float) and piece.credits >= 0)


@pytest.mark.parametrize(
    ("cost", "credits"),
    [(0.0125, 0.0125), (2, 2.0), (0, 0.0), (-1, None), (True, None), ("0.5", None), (None, None)],
)
def test_openai_usage_cost_is_read_as_credits_only_when_it_is_a_price(cost: Any, credits: Any) -> None:
    from tokenpool_proxy.providers.openai_compat import parse_event

    usage = {"prompt_tokens": 3, "completion_tokens": 4, "cost": cost}
    piece = parse_event(orjson.dumps({"choices": [], "usage": usage}))
    assert piece is not None and piece.credits == credits and piece.prompt_tokens == 3


@settings(max_examples=300, deadline=None)
@given(
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "text": json_values,
            "nodes": st.lists(json_objects | json_values, max_size=3) | json_values,
            "stop_reason": json_values,
        },
    )
)
def test_any_augment_line_is_read_without_crashing(line: Any) -> None:
    from tokenpool_proxy.providers.augment import MalformedLine, parse_line, read_nodes

    try:
        text, finish, ended, nodes = parse_line(orjson.dumps(line) + b"\n")
    except MalformedLine:  # a line that is not a JSON object: a broken answer, never a crash
        assert not isinstance(line, dict)
        return
    assert isinstance(text, str) and (finish is None or ended)
    if nodes:
        calls, usage = read_nodes(nodes, [])
        assert all(isinstance(c.arguments, str) and c.name for c in calls)
        assert usage is None or all(isinstance(n, int) and n >= 0 for n in usage)
