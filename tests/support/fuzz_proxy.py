"""A proxy served for fuzzing: the real app over real HTTP (uvicorn in a thread of its own), an
index filled by hand (one user holding one Augment and one OpenAI-compatible token on the fake
upstream), and the OpenAPI document of its public API, chat route and plugin parameters included.

Fuzzing budget: ``TOKENPOOL_FUZZ_EXAMPLES`` examples per operation (default: the short CI
profile; docs/proxy.md shows the long one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.proxy_routes import new_personal_token, upstream_route, user_route
from tests.support.waiting import wait_for
from tokenpool.dev.controlplane import free_port

PT = new_personal_token()
EXAMPLES = int(os.environ.get("TOKENPOOL_FUZZ_EXAMPLES", "25"))


@contextmanager
def fuzz_proxy(fake_url: str) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of a proxy serving until the block ends."""
    from tokenpool_proxy.app import create_app
    from tokenpool_proxy.index import RouteIndex
    from tokenpool_proxy.settings import ModelSpec, ProxySettings

    index = RouteIndex()
    index.replace_upstreams(
        [
            ("a", upstream_route("aug", fake_url + "aug/", token="cred-aug", maxConcurrency=50)),
            (
                "o",
                upstream_route(
                    "oai", fake_url + "oai/", token="cred-oai", provider="OpenAI", maxConcurrency=50
                ),
            ),
        ]
    )
    index.replace_users([("u", user_route("alice", PT, ["aug", "oai"]))])
    models = (ModelSpec(id="augment-chat"), ModelSpec(id="gpt-x", provider="OpenAI"))
    settings = ProxySettings(
        ops_port=0, models=models, access_log=False, slot_wait_seconds=2, read_timeout_seconds=5
    )
    app = create_app(settings, index=index)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20, what="fuzzed proxy started")
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _bearer() -> dict[str, Any]:
    return {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"}}


def openapi_document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document, completed with what FastAPI cannot see: the chat route (a plain
    Starlette route), the personal token header and the plugin's query parameters."""
    from tokenpool_proxy.schemas import ChatRequest

    doc: dict[str, Any] = app.openapi()
    for ops_path in ("/metrics", "/healthz", "/readyz"):
        doc["paths"].pop(ops_path, None)
    schema = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    doc.setdefault("components", {}).setdefault("schemas", {}).update(schema.pop("$defs", {}))
    schema["properties"]["model"] = {"type": "string", "enum": ["augment-chat", "gpt-x"]}  # GET /v1/models
    doc["components"]["schemas"]["ChatRequest"] = schema
    doc["paths"]["/v1/chat/completions"] = {
        "post": {
            "operationId": "chat_completions",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
            },
            "responses": {"200": {"description": "a completion or an SSE stream"}},
        }
    }
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            params = operation.setdefault("parameters", [])
            if path.startswith(("/api/", "/v1/")):
                params.append(_bearer())
            if path == "/api/user/info" and method == "get":
                params.append(
                    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}
                )
            if path == "/api/user/usage":
                params.append(
                    {"name": "days", "in": "query", "required": False, "schema": {"type": "string"}}
                )
    return doc
