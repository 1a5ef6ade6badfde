"""The console in headless Chromium, on the whole system: operator, proxy, fake upstream and
console as real processes on the real API server. An admin logs in, creates a user and sees the
token once, allocates tokens, sends chats through the proxy and sees the usage appear, sees the
accounts' standing (one spent, one running low), switches language; an admin signs an Augment
account in; a user rotates their token; a visitor asks for access and is approved. Screenshots
go to .artifacts/console/screenshots (docs/console.md shows those)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest

from tests.support.browser_fixtures import Browser
from tests.support.console_fixtures import ConsoleProcess
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = [pytest.mark.integration, pytest.mark.browser]
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
# The accounts' standing as the fake upstream reports it: acct-3 is spent, acct-2 running low.
KNOBS = {
    "acct-2": {"credits_remaining": 60, "plan": "Pro"},
    "acct-3": {"depleted": True, "credits_remaining": 0},
}


@pytest.fixture
def system(
    namespace: str,
    pool: Pool,
    fake_upstream: Any,
    operator_process: Callable[..., Any],
    proxy_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
) -> dict[str, Any]:
    operator_process(namespace, standing_first_delay_seconds=0)
    for name in ("acct-1", "acct-2", "acct-3"):
        credential = f"cred-{name}-" + "0" * 40
        fake_upstream.http.put(f"_control/accounts/{credential}", json=KNOBS.get(name, {})).raise_for_status()
        pool.credential(f"{name}-cred", credential)
        pool.token(
            name,
            endpoint=fake_upstream.tenant(name),
            labels={"tokenpool.io/pool": "shared"},
            description=f"Shared account {name[-1]}",
        )
    pool.user("admin", role="Admin", displayName="Pool Admin")
    pool.user("alice", displayName="Alice")
    pool.allocation("alice-shared", "alice", tokens=["acct-1", "acct-2"])
    tokens = {
        n: wait_for(lambda n=n: pool.personal_token(n), 60, what=f"{n}'s token") for n in ("admin", "alice")
    }
    proxy = proxy_process(namespace, usage_flush_interval_seconds=1)
    # The fake tenant is plain http on 127.0.0.1: allowed explicitly, as an admin would a host.
    console = console_process(namespace, join="open", augment_tenant_hosts="*.augmentcode.com,127.0.0.1")
    return {"proxy": proxy, "console": console, "tokens": tokens}


def log_in(browser: Browser, url: str, token: str) -> None:
    browser.open(f"{url}/login")
    browser.fill("#token", token)
    browser.click("#login")
    browser.find("#whoami")


def test_admin_journey(browser: Browser, system: dict[str, Any], pool: Pool) -> None:
    url = system["console"].url
    log_in(browser, url, system["tokens"]["admin"])
    browser.wait_text("h1", "Overview")
    browser.shot("overview")

    browser.open(f"{url}/users")
    browser.click("#create-user-box summary")
    browser.fill("#new-name", "carol")
    browser.fill("#new-display", "Carol")
    browser.click("#create-user-submit")
    shown = browser.wait_text("#notice", "shown only this once")
    carol = HEX64.search(browser.text("#shown-token"))
    assert carol is not None and "User created" in shown
    browser.wait_text("#users-table", "carol")
    browser.shot("user-created-token-once")
    browser.open(f"{url}/users")
    assert carol.group(0) not in browser.driver.page_source, "the token is not shown again"

    browser.open(f"{url}/allocations")
    browser.click("#allocate-box summary")
    browser.fill("#alloc-users", "carol")
    browser.fill("#alloc-selector", "tokenpool.io/pool=shared")
    browser.fill("#alloc-count", "2")
    browser.click("#allocate-submit")
    browser.wait_text("#notice", "Allocation created")
    wait_for(lambda: len(pool.upstream_names("carol") or []) == 2, 30, what="carol's route has two tokens")
    browser.open(f"{url}/allocations")
    browser.wait_text("#allocations-table", "acct-")
    browser.shot("allocations")

    chat = openai.OpenAI(base_url=f"{system['proxy'].url}/v1", api_key=carol.group(0), max_retries=0)
    wait_for(lambda: len(chat.models.list().data) > 0, 20, what="the proxy knows carol")
    for _ in range(3):
        answer = chat.chat.completions.create(
            model="augment-chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content

    def usage_shown() -> bool:
        browser.open(f"{url}/users/carol")
        return browser.text(".cards .stat strong") == "3"

    wait_for(usage_shown, 30, interval=0.5, what="carol's 3 requests on her page")
    browser.shot("user-detail")

    def stats_shown() -> bool:  # statistics may be up to a few seconds old (pool_stats.CACHE_SECONDS)
        browser.open(f"{url}/stats")
        return "carol" in browser.text("#top-users") and browser.text("#stat-requests") == "3"

    wait_for(stats_shown, 30, interval=1, what="carol among the top users")
    browser.shot("statistics")

    def standing_shown() -> bool:  # the operator's first readings, then a reload
        browser.open(f"{url}/tokens")
        table = browser.text("#tokens-table")
        return "Retired" in table and "Renewal due" in table

    wait_for(standing_shown, 30, interval=0.5, what="the accounts' standing in the table")
    assert "Depleted" in browser.text("tr[data-token='acct-3']")
    assert "60 / 1,000" in browser.text("tr[data-token='acct-2']")
    browser.shot("upstream-tokens")

    browser.click("#lang-zh")
    browser.wait_text("header nav", "用户")
    assert "上游令牌" in browser.text("header nav")
    browser.wait_text("h1", "上游令牌")
    browser.shot("upstream-tokens-zh")
    browser.open(f"{url}/overview")
    browser.wait_text("h1", "概览")
    browser.dark(True)
    browser.shot("overview-zh-dark")
    browser.dark(False)
    browser.click("#lang-en")
    browser.wait_text("h1", "Overview")


def test_admin_signs_in_an_account(
    browser: Browser, system: dict[str, Any], pool: Pool, fake_upstream: Any
) -> None:
    access_token = "browser-signed-in-access-token-0123456789"
    url = system["console"].url
    log_in(browser, url, system["tokens"]["admin"])
    browser.open(f"{url}/tokens")
    browser.click("#add-token-box summary")
    browser.click("#sign-in-start")
    link = browser.find("#sign-in-link").get_attribute("href")
    assert link.startswith("https://auth.augmentcode.com/authorize?") and link in browser.text("#sign-in-url")
    # Signing in on Augment's page, played here: the page would show this JSON.
    state = parse_qs(urlsplit(link).query)["state"][0]
    fake_upstream.http.put(
        "_control/oauth/browser-code", json={"access_token": access_token}
    ).raise_for_status()
    shown = {"code": "browser-code", "state": state, "tenant_url": fake_upstream.tenant("d9")}
    browser.fill("#sign-in-answer", json.dumps(shown))
    browser.fill("#sign-in-name", "signed-in-1")
    browser.fill("#sign-in-labels", "tokenpool.io/pool=shared")
    browser.shot("upstream-token-sign-in")
    browser.click("#sign-in-finish")
    browser.wait_text("#notice", "Account signed in and added")
    browser.wait_text("#tokens-table", "signed-in-1")
    browser.find("#sign-in-start")  # ready for the next one
    assert pool.secret_value("signed-in-1-credential") == access_token
    assert pool.get(c.KIND_UPSTREAM, "signed-in-1")["spec"]["endpoint"] == fake_upstream.tenant("d9")

    def credits_shown() -> bool:  # the operator reads the new account's standing at once
        browser.open(f"{url}/tokens")
        return "1,000 / 1,000" in browser.text("tr[data-token='signed-in-1']")

    wait_for(credits_shown, 30, interval=0.5, what="the signed-in account's credits")
    assert access_token not in browser.driver.page_source


def test_user_rotates_own_token(browser: Browser, system: dict[str, Any]) -> None:
    url, old = system["console"].url, system["tokens"]["alice"]
    log_in(browser, url, old)
    browser.wait_text("h1", "My account")
    browser.wait_text("#my-tokens", "acct-1")
    browser.shot("my-account")
    browser.click("#rotate-mine")
    browser.accept_confirm()
    browser.wait_text("#notice", "shown only this once")
    new = HEX64.search(browser.text("#shown-token"))
    assert new is not None and new.group(0) != old
    browser.shot("my-account-rotated")
    proxy = system["proxy"].url
    wait_for(
        lambda: openai.OpenAI(base_url=f"{proxy}/v1", api_key=new.group(0), max_retries=0).models.list(),
        30,
        what="new token works",
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{proxy}/v1", api_key=old, max_retries=0).models.list()
    browser.open(f"{url}/me")  # the session moved to the new token
    browser.wait_text("h1", "My account")


def test_visitor_asks_for_access_and_is_approved(browser: Browser, system: dict[str, Any]) -> None:
    url = system["console"].url
    browser.open(f"{url}/login")
    browser.click("#join-link")
    browser.fill("#join-name", "Dora 探险家")
    browser.fill("#join-email", "dora@example.com")
    browser.shot("join")
    browser.click("#join-submit")
    browser.wait_text("#join-state", "Waiting for an admin")
    visitor_cookies = browser.driver.get_cookies()

    browser.driver.delete_all_cookies()
    log_in(browser, url, system["tokens"]["admin"])
    browser.open(f"{url}/requests")
    browser.wait_text("#pending-table", "Dora 探险家")
    browser.shot("access-requests")
    browser.click("#pending-table tr[data-user^='dora-'] button")
    browser.wait_text("#pending-table", "No requests are waiting")

    browser.driver.delete_all_cookies()
    for cookie in visitor_cookies:
        browser.driver.add_cookie(cookie)
    browser.open(f"{url}/join/status")
    browser.wait_text("#join-state", "Approved")
    token = HEX64.search(browser.text("#shown-token"))
    assert token is not None
    browser.shot("join-approved")
    browser.open(f"{url}/join/status")
    browser.wait_text("#join-state", "not known here")
    log_in(browser, url, token.group(0))
    browser.wait_text("h1", "Dora 探险家")
