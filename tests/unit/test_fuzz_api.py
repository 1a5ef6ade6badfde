"""Schemathesis against the proxy's public API (OpenAPI document of the app plus the chat route
and the plugin parameters), over real HTTP: every answer is below 500 and no body carries a
traceback, with the generated credentials and with a valid personal token.

Short bounded profile here (``TOKENPOOL_FUZZ_EXAMPLES``, default 25 per operation); the long one
is documented in docs/proxy.md ("Fuzzing").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.fuzz_proxy import EXAMPLES, PT, fuzz_proxy, openapi_document
from tests.support.proxy_fixtures import FakeUpstream

TRIED: dict[str, int] = {"requests": 0, "failures": 0, "chat answered": 0}


@pytest.fixture(scope="module")
def served(_fake_upstream_session: FakeUpstream) -> Iterator[tuple[str, Any]]:
    with fuzz_proxy(_fake_upstream_session.url) as proxy:
        yield proxy


def _schema() -> Any:
    from tokenpool_proxy.app import create_app
    from tokenpool_proxy.index import RouteIndex
    from tokenpool_proxy.settings import ProxySettings

    return schemathesis.openapi.from_dict(openapi_document(create_app(ProxySettings(), index=RouteIndex())))


schema = _schema()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_answer_is_a_server_error(case: Any, served: tuple[str, Any]) -> None:
    base_url, _ = served
    with requests.Session() as session:
        for headers in (None, {"Authorization": f"Bearer {PT}"}):
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            TRIED["requests"] += 1
            TRIED["chat answered"] += case.path == "/v1/chat/completions" and response.status_code == 200
            bad = response.status_code >= 500 or "Traceback" in response.text
            TRIED["failures"] += bad
            assert not bad, (case.method, case.path, response.status_code, response.text[:300])


def test_fuzzing_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\nfuzzing: {TRIED['requests']} requests ({TRIED['chat answered']} chats answered by the "
            f"upstream), {TRIED['failures']} answers >= 500 or with a traceback"
        )
    assert TRIED["requests"] == 0 or TRIED["chat answered"] > 0, "no generated chat reached the upstream"
