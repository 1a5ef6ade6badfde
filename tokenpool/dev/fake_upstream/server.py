"""A fake upstream: a real HTTP server speaking Augment's ``chat-stream`` protocol, and the
OpenAI-compatible (openai_dialect.py) and Anthropic (anthropic_dialect.py) chat APIs.

Run it with ``python -m tokenpool.dev.fake_upstream --port N``; any path prefix is a tenant
(``http://127.0.0.1:N/t1/`` and ``http://127.0.0.1:N/`` both work). It is the demo upstream of
``tokenpool dev``, the upstream of the integration tests and the baseline of the benchmark, so it
is lean (plain aiohttp, one write per answer when no delay is asked).

Control API (JSON), for tests and demos:
* ``PUT /_control/config`` ``{text, chunks, delay_ms, first_delay_ms, stop, stream_writes,
  preamble, usage_node, raw_lines}``: default answer (``stop``: ``stop_reason`` | ``done`` |
  ``eof`` — how the stream ends; ``stream_writes``: one write per line even without delay, for
  time-to-first-byte figures; ``preamble``: text said before tool calls; ``usage_node``: Augment
  reports token usage in a node; ``raw_lines``: the Augment answer, line by line, exactly as
  given; ``echo``: answer with the request's ``message``, as a model told to repeat it would;
  ``cost``: the OpenAI-compatible answer's ``usage.cost``, as OpenRouter prices answers).
  Tool use follows one rule in every dialect (tool_script.py).
* ``PUT /_control/tokens/{token}`` ``{fault, times, status, retry_after, after_chunks, ...}``:
  per-token behaviour; any answer field above may be overridden per token too. Faults:
  ``unauthorized`` (401 "Invalid token"), ``suspended`` (403 with the suspension text),
  ``suspended_in_stream`` / ``blocked`` (the text inside a 200 stream), ``rate_limited``
  (429 + Retry-After), ``server_error`` (``status``, default 503), ``hang`` (never answers),
  ``drop`` (sends ``after_chunks`` lines, then cuts the connection), ``stall`` (sends
  ``after_chunks`` lines, then falls silent with the connection open), ``malformed`` (sends
  ``after_chunks`` lines, then lines that are not JSON). ``times``: how many requests the fault
  applies to (absent: all). ``DELETE`` removes it. The validity probe (``find-missing``) answers
  the account faults as the account would (401 for ``unauthorized``, 403 with the notice for
  ``suspended``, ``suspended_in_stream`` and ``blocked``) and succeeds otherwise.
* ``GET /_control/requests`` (recorded requests: path, headers, body, token), ``DELETE`` clears.
* ``GET /_control/stats``: per token ``{requests, in_flight, max_in_flight}``.
* ``POST /_control/reset``: everything back to defaults.

Account endpoints (OAuth ``token``, ``subscription-info``, ``get-credit-info``, ``get-models``)
and their knobs (``/_control/accounts/…``, ``/_control/oauth/…``): :mod:`tokenpool.dev.fake_accounts`.

``POST {prefix}/chat/completions`` (OpenAI-compatible) and ``POST {prefix}/v1/messages``
(Anthropic) are SSE endpoints for the proxy's pass-through providers, with the same answer
settings and recording; their faults are listed in their modules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tokenpool.dev import fake_accounts

from . import anthropic_dialect, augment_tools, openai_dialect

SUSPENDED_TEXT = "Your account has been suspended because of unusual activity."
BLOCKED_TEXT = "Request blocked. Please reach out to support@augmentcode.com if you think this was a mistake."
REQUIRED_HEADERS = ("authorization", "x-api-version", "x-request-id", "x-request-session-id", "user-agent")
DEFAULTS: dict[str, Any] = {
    "text": "Hello from the fake Augment upstream.",
    "chunks": 3,
    "delay_ms": 0,
    "first_delay_ms": 0,
    "stop": "stop_reason",
    "preamble": "",
    "usage_node": False,
    "raw_lines": None,
    "cost": None,
}
# Token counts the fake reports where its dialect reports any (prompt, completion).
AUGMENT_USAGE = (21, 9)


@dataclass
class Stats:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


@dataclass
class State:
    record: bool = True
    config: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Stats] = field(default_factory=dict)
    accounts: fake_accounts.Accounts = field(default_factory=fake_accounts.Accounts)
    calls: int = 0  # tool calls made so far: their ids are unique for the server's life

    def call_id(self, prefix: str) -> str:
        self.calls += 1
        return f"{prefix}{self.calls:04d}"


def _lines(text: str, chunks: int, stop: str) -> list[bytes]:
    chunks = max(1, chunks)
    size = -(-len(text) // chunks) or 1
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    pieces += [""] * (chunks - len(pieces))
    lines = [
        orjson.dumps({"text": p, "unknown_blob_names": [], "checkpoint_not_found": False}) + b"\n"
        for p in pieces
    ]
    if stop == "stop_reason":
        lines.append(b'{"text":"","stop_reason":1}\n')
    elif stop == "done":
        lines.append(b'{"text":"","done":true}\n')
    return lines


def _fault(state: State, token: str) -> dict[str, Any]:
    """The behaviour for this token's request, consuming one of ``times`` if limited."""
    spec = state.tokens.get(token)
    if not spec:
        return state.config
    merged = {**state.config, **spec}
    times = spec.get("times")
    if times is not None:
        if times <= 0:
            return {**state.config, **{k: v for k, v in spec.items() if k in DEFAULTS}}
        spec["times"] = times - 1
    return merged


async def chat_stream(request: web.Request) -> web.StreamResponse:
    state: State = request.app["state"]
    missing = [h for h in REQUIRED_HEADERS if h not in request.headers]
    if missing or request.headers.get("x-api-version") != "2":
        return web.json_response({"error": f"missing or bad headers: {missing}"}, status=400)
    auth = request.headers["authorization"]
    if not auth.startswith("Bearer "):
        return web.json_response({"error": "bad authorization"}, status=401)
    token = auth[7:]
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return web.json_response({"error": "bad json"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return web.json_response({"error": "message missing"}, status=400)
    if state.record:
        state.requests.append(
            {
                "path": request.path,
                "headers": {str(k).lower(): v for k, v in request.headers.items()},
                "body": body,
                "token": token,
            }
        )
    stats = state.stats.setdefault(token, Stats())
    stats.requests += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    finished = False

    def finish() -> None:
        # Called before the last bytes leave: once the client has the whole answer it may send
        # the next request at once, and that one must not look concurrent with this one.
        nonlocal finished
        if not finished:
            finished = True
            stats.in_flight -= 1

    try:
        spec = _fault(state, token)
        if spec.get("echo"):
            spec = {**spec, "text": body["message"]}
        resp = await _answer(
            request, spec, finish, augment_tools.tool_lines(state.config, body, state.call_id)
        )
        if resp.status == 200:
            state.accounts.charge(token)
        return resp
    finally:
        finish()


async def _answer(
    request: web.Request,
    spec: dict[str, Any],
    finish: Callable[[], None],
    tool_lines: list[bytes] | None = None,
) -> web.StreamResponse:
    fault = spec.get("fault")
    if spec["first_delay_ms"]:
        await asyncio.sleep(spec["first_delay_ms"] / 1000)
    if fault == "unauthorized":
        return web.Response(status=401, text="Invalid token")
    if fault == "suspended":
        return web.Response(status=403, text=SUSPENDED_TEXT)
    if fault == "rate_limited":
        return web.Response(
            status=429, text="Too many requests", headers={"Retry-After": str(spec.get("retry_after", 1))}
        )
    if fault == "server_error":
        return web.Response(status=int(spec.get("status", 503)), text="upstream unavailable")
    if fault == "hang":
        await asyncio.Event().wait()
    text = {"blocked": BLOCKED_TEXT, "suspended_in_stream": SUSPENDED_TEXT}.get(fault or "", spec["text"])
    lines = _lines(text, 1 if fault in ("blocked", "suspended_in_stream") else spec["chunks"], spec["stop"])
    if tool_lines is not None and fault not in ("blocked", "suspended_in_stream"):
        lines = tool_lines
    if spec["raw_lines"] is not None:
        lines = [line.encode() + b"\n" for line in spec["raw_lines"]]
    if fault == "malformed":
        lines = lines[: int(spec.get("after_chunks", 1))] + [b"<html>502 Bad Gateway</html>\n"] * 2
    if spec["usage_node"]:  # before the stop line
        usage = {"input_tokens": AUGMENT_USAGE[0], "output_tokens": AUGMENT_USAGE[1]}
        node = {"id": 99, "type": 10, "content": "", "token_usage": usage}
        lines.insert(
            len(lines) - (spec["stop"] != "eof"), orjson.dumps({"text": "", "nodes": [node]}) + b"\n"
        )
    if not spec["delay_ms"] and fault not in ("drop", "stall") and not spec.get("stream_writes"):
        return web.Response(body=b"".join(lines), content_type="application/x-ndjson")
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i, line in enumerate(lines):
        if fault == "drop" and i >= int(spec.get("after_chunks", 1)):
            assert request.transport is not None
            request.transport.abort()  # cut mid-stream: no terminating chunk
            return resp
        if fault == "stall" and i >= int(spec.get("after_chunks", 1)):
            await asyncio.Event().wait()  # silent mid-answer, the connection left open
        if i == len(lines) - 1:
            finish()
        await resp.write(line)
        if spec["delay_ms"] and i < len(lines) - 1:
            await asyncio.sleep(spec["delay_ms"] / 1000)
    await resp.write_eof()
    return resp


async def simple_probe(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    token = request.headers.get("authorization", "")[7:]
    if state.record:
        state.requests.append({"path": request.path, "headers": {}, "body": {}, "token": token})
    fault = state.tokens.get(token, {}).get("fault")
    if fault == "unauthorized":
        return web.Response(status=401, text="Invalid token")
    if fault in ("suspended", "suspended_in_stream"):
        return web.Response(status=403, text=SUSPENDED_TEXT)
    if fault == "blocked":
        return web.Response(status=403, text=BLOCKED_TEXT)
    return web.json_response({"unknown_memory_names": [], "nonindexed_blob_names": []})


async def control(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    what, method = request.match_info["what"], request.method
    if what.startswith(("accounts/", "oauth")):
        return await fake_accounts.control(request, state.accounts, what)
    if what == "config" and method == "PUT":
        state.config.update(await request.json())
    elif what.startswith("tokens/") and method == "PUT":
        state.tokens[what[7:]] = await request.json()
    elif what.startswith("tokens/") and method == "DELETE":
        state.tokens.pop(what[7:], None)
    elif what == "requests" and method == "GET":
        return web.json_response(state.requests, dumps=lambda o: orjson.dumps(o).decode())
    elif what == "requests" and method == "DELETE":
        state.requests.clear()
    elif what == "stats" and method == "GET":
        return web.json_response({t: vars(s) for t, s in state.stats.items()})
    elif what == "reset" and method == "POST":
        state.config, state.tokens = dict(DEFAULTS), {}
        state.requests.clear()
        state.stats.clear()
        state.accounts = fake_accounts.Accounts()
    else:
        return web.json_response({"error": "unknown control call"}, status=404)
    return web.json_response({"ok": True})


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path.endswith("/chat-stream"):
        return await chat_stream(request)
    if path.endswith("/chat/completions"):
        return await pass_through(request, openai_dialect.answer)
    if path.endswith("/v1/messages"):
        return await pass_through(request, anthropic_dialect.answer)
    if path.endswith("/find-missing"):
        return await simple_probe(request)
    if fake_accounts.handles(path):
        return await fake_accounts.endpoint(request, request.app["state"].accounts)
    return web.json_response({"error": "not found"}, status=404)


async def pass_through(request: web.Request, answer: Any) -> web.StreamResponse:
    """The OpenAI-compatible and Anthropic endpoints: recording, stats and faults as for
    chat-stream; the credential is the ``x-api-key`` or the Bearer token."""
    state: State = request.app["state"]
    token = request.headers.get("x-api-key") or request.headers.get("authorization", "")[7:]
    body = orjson.loads(await request.read())
    if state.record:
        headers = {str(k).lower(): v for k, v in request.headers.items()}
        state.requests.append({"path": request.path, "headers": headers, "body": body, "token": token})
    stats = state.stats.setdefault(token, Stats())
    stats.requests += 1
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        response: web.StreamResponse = await answer(request, _fault(state, token), body, state.call_id)
        return response
    finally:
        stats.in_flight -= 1


def make_app(record: bool = True) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["state"] = State(record=record)
    app.router.add_route("*", "/_control/{what:.+}", control)
    app.router.add_route("POST", "/{tail:.*}", dispatch)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake upstream for tokenpool's tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--no-record", action="store_true", help="do not keep requests (benchmarks)")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    web.run_app(
        make_app(record=not args.no_record),
        handler_cancellation=True,  # a client that leaves ends its handler (tests count in-flight)
        host=args.host,
        port=args.port,
        access_log=None,
        print=lambda *_: print(f"fake upstream listening on http://{args.host}:{args.port}/", flush=True),
    )
