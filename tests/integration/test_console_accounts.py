"""Upstream accounts in the console, over the real API server with the operator and the fake
upstream: an admin signs an Augment account in (OAuth with PKCE; the fake upstream plays the
tenant's single-use ``token`` endpoint), refusals leave nothing behind, and each account's standing
(plan, credits, expiry, retired, renewal due) shows in the API, the table and the overview."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import kubernetes
import pytest

from tests.support.console_fixtures import ConsoleClient, ConsoleProcess
from tests.support.kube_identities import bind, service_account_token
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as c

pytestmark = pytest.mark.integration
ACCESS_TOKEN = "acc-console-0123456789abcdef-secret"
# The fake tenant is plain http on 127.0.0.1: allowed here explicitly, as an admin would a host.
TENANT_HOSTS = "*.augmentcode.com,127.0.0.1"
# Standing readings at once and every 2 s (6 h by default).
FAST = {"standing_interval_seconds": 2, "standing_first_delay_seconds": 0, "renewal_margin_days": 3}
START, FINISH = "/api/admin/tokens/oauth/start", "/api/admin/tokens/oauth/finish"


@dataclass
class World:
    pool: Pool
    fake: Any
    console: ConsoleProcess
    tokens: dict[str, str]
    seen: list[str] = field(default_factory=list)  # every answer body, to search for secrets

    def client(self, user: str = "boss") -> ConsoleClient:
        client = self.console.client()
        assert client.login(self.tokens[user]).status_code == 200
        return client

    def call(self, client: ConsoleClient, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        response = client.post(path, json=body or {})
        self.seen.append(response.text)
        return response

    def code(self, code: str, access_token: str = ACCESS_TOKEN) -> None:
        self.fake.http.put(f"_control/oauth/{code}", json={"access_token": access_token}).raise_for_status()

    def nothing_named(self, name: str) -> bool:
        with pytest.raises(kubernetes.client.ApiException) as missing:
            self.pool.get(c.KIND_UPSTREAM, name)
        return missing.value.status == 404 and self.pool.secret(f"{name}-credential") is None


def page_answer(url: str, code: str, tenant: str, state: str | None = None) -> str:
    """What Augment's page shows after the sign-in the URL starts (its ``state`` unless forged)."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return json.dumps({"code": code, "state": state or query["state"], "tenant_url": tenant})


@pytest.fixture
def world(
    namespace: str,
    pool: Pool,
    fake_upstream: Any,
    operator_process: Callable[..., Any],
    console_process: Callable[..., ConsoleProcess],
) -> World:
    operator_process(namespace, **FAST)
    pool.user("boss", role="Admin")
    pool.user("carl")
    tokens = {
        n: wait_for(lambda n=n: pool.personal_token(n), 60, what=f"{n}'s token") for n in ("boss", "carl")
    }
    console = console_process(namespace, augment_tenant_hosts=TENANT_HOSTS)
    return World(pool, fake_upstream, console, tokens)


def test_a_signed_in_account_gets_its_secret_an_owned_token_and_its_standing(world: World) -> None:
    admin, tenant = world.client(), world.fake.tenant("d7")
    world.pool.credential("taken-cred")
    world.pool.token("taken")
    wait_for(lambda: admin.get("/api/admin/tokens/taken").status_code == 200, 10, what="mirror has 'taken'")
    started = world.call(admin, START)
    assert started.status_code == 200, started.text
    login = started.json()
    assert login["url"].startswith("https://auth.augmentcode.com/authorize?response_type=code&")
    query = {k: v[0] for k, v in parse_qs(urlsplit(login["url"]).query).items()}
    assert (query["client_id"], query["prompt"]) == ("v", "login")
    assert 590 <= login["expiresInSeconds"] <= 600
    world.code("code-1")
    answer = page_answer(login["url"], "code-1", tenant)
    body = {"loginId": login["loginId"], "answer": answer, "name": "signed-1", "labels": {"pool": "gold"}}

    # Mistakes found before the sign-in is used keep it: a garbled paste, a name already taken.
    garbled = world.call(admin, FINISH, {**body, "answer": "code-1 d7"})
    assert garbled.status_code == 422 and "paste the JSON" in garbled.json()["error"]["message"]
    taken = world.call(admin, FINISH, {**body, "name": "taken"})
    assert taken.status_code == 409 and "already exists" in taken.json()["error"]["message"]

    finished = world.call(admin, FINISH, {**body, "maxConcurrency": 2, "description": "signed in"})
    assert finished.status_code == 201, finished.text
    shown = finished.json()
    assert (shown["name"], shown["endpoint"], shown["credentialSecret"]) == (
        "signed-1",
        tenant,
        "signed-1-credential",
    )
    # PKCE: the verifier the tenant received is the one whose S256 the URL carried.
    [exchange] = world.fake.http.get("_control/oauth").json()
    digest = hashlib.sha256(exchange["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"]

    token = world.pool.get(c.KIND_UPSTREAM, "signed-1")
    assert token["metadata"]["labels"] == {"pool": "gold"}
    expected = {
        "provider": "Augment",
        "endpoint": tenant,
        "credentialSecretRef": {"name": "signed-1-credential", "key": "token"},
        "maxConcurrency": 2,
        "minIntervalSeconds": 0,
        "maxAllocations": 0,
        "description": "signed in",
    }
    assert {k: token["spec"].get(k) for k in expected} == expected
    secret = world.pool.secret("signed-1-credential")
    assert secret is not None and world.pool.secret_value("signed-1-credential") == ACCESS_TOKEN
    assert [o.uid for o in secret.metadata.owner_references] == [token["metadata"]["uid"]]
    assert secret.metadata.labels == {
        "tokenpool.io/credential-for": "signed-1",
        c.LABEL_MANAGED_BY: "tokenpool-console",
    }
    events = world.pool.events("signed-1")
    assert any(r == "TokenSignedIn" and f"PoolUser {world.pool.ns}/boss" in m for _, r, m in events), events

    # Single use: the same sign-in cannot be finished twice.
    again = world.call(admin, FINISH, {**body, "name": "signed-2"})
    assert again.status_code == 404 and again.json()["error"]["code"] == "SignInNotFound"
    assert world.nothing_named("signed-2")

    # The operator takes it from there: Ready, then the account's standing, which the console shows.
    wait_for(lambda: world.pool.reason(c.KIND_UPSTREAM, "signed-1") == "Ready", 30, what="Ready")

    def standing() -> dict[str, Any] | None:
        account: dict[str, Any] | None = admin.get("/api/admin/tokens/signed-1").json()["token"]["account"]
        return account if account and account["active"] and account["creditsRemaining"] == 1000 else None

    account = wait_for(standing, 30, interval=0.3, what="the standing in the console")
    assert account["plan"] == "Developer" and account["creditsTotal"] == 1000
    assert account["expiresAt"] == "2099-01-01T00:00:00Z" and account["retired"] is False
    assert account["active"]["status"] is True and account["active"]["reason"] == "Active"

    # The access token went into the Secret and nowhere else.
    assert not [text for text in world.seen if ACCESS_TOKEN in text]
    assert ACCESS_TOKEN not in json.dumps(world.pool.get(c.KIND_UPSTREAM, "signed-1"))
    assert ACCESS_TOKEN not in json.dumps(events) and ACCESS_TOKEN not in world.console.log(5000)


def test_a_kubernetes_identity_signs_in_as_itself(
    world: World, namespace: str, kube_api: kubernetes.client.ApiClient
) -> None:
    """Checked with access reviews first, then written while impersonating the person: this
    identity may create Secrets and UpstreamTokens but not patch Secrets, so its Secret stays
    without owner although the console's own identity could have patched it."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_api)
    role = f"signer-{namespace}"[:63]
    rules = [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [c.GROUP], "resources": [c.PLURAL_UPSTREAM], "verbs": ["create", "get", "list"]},
    ]
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": rules})
    try:
        bind(kube_api, namespace, "signer", role)
        script = world.console.client().bearer(service_account_token(kube_api, namespace, "signer"))

        def start() -> Any:
            response = world.call(script, START)
            return response.json() if response.status_code == 200 else None

        login = wait_for(start, 30, interval=0.5, what="the binding is effective")
        world.code("code-k8s")
        answer = page_answer(login["url"], "code-k8s", world.fake.tenant("d9"))
        finished = world.call(
            script, FINISH, {"loginId": login["loginId"], "answer": answer, "name": "by-k8s"}
        )
        assert finished.status_code == 201, finished.text
    finally:
        rbac.delete_cluster_role(role)
    secret = world.pool.secret("by-k8s-credential")
    assert secret is not None and world.pool.secret_value("by-k8s-credential") == ACCESS_TOKEN
    assert not secret.metadata.owner_references, "the owner patch was refused to the person"
    person = f"Kubernetes user system:serviceaccount:{namespace}:signer"
    assert any(r == "TokenSignedIn" and person in m for _, r, m in world.pool.events("by-k8s"))
    assert "stays without owner" in world.console.log(5000)


def test_refused_sign_ins_create_nothing(
    world: World, namespace: str, console_process: Callable[..., ConsoleProcess]
) -> None:
    admin, tenant = world.client(), world.fake.tenant("d8")

    def start(client: ConsoleClient) -> dict[str, Any]:
        response = world.call(client, START)
        assert response.status_code == 200, response.text
        started: dict[str, Any] = response.json()
        return started

    def finish(client: ConsoleClient, login: dict[str, Any], name: str, code: str, **answer: Any) -> Any:
        text = page_answer(login["url"], code, answer.get("tenant", tenant), answer.get("state"))
        return world.call(client, FINISH, {"loginId": login["loginId"], "answer": text, "name": name})

    def refused(response: httpx.Response, status: int, code: str, words: str) -> None:
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == (status, code), response.text
        assert words in error["message"] and "Traceback" not in response.text

    # An answer of another sign-in (state): refused, and the sign-in is used up.
    login = start(admin)
    refused(
        finish(admin, login, "acct-state", "c-1", state="forged"), 422, "SignInRefused", "another sign-in"
    )
    refused(finish(admin, login, "acct-state", "c-1"), 404, "SignInNotFound", "start a new one")

    # A code already exchanged: the tenant refuses it.
    world.code("code-once")
    assert finish(admin, start(admin), "first", "code-once").status_code == 201
    refused(finish(admin, start(admin), "acct-reused", "code-once"), 422, "SignInRefused", "refused the code")

    # Another session (the same admin, logged in again) cannot finish this session's sign-in, nor
    # can a script with the admin's bearer token; the sign-in stays this session's: its own finish
    # gets to the checks (a tenant host that is not allowed, so nothing is sent anywhere).
    login = start(admin)
    other_session = world.client()
    refused(finish(other_session, login, "acct-other", "c-2"), 404, "SignInNotFound", "started elsewhere")
    script = world.console.client().bearer(world.tokens["boss"])
    refused(finish(script, login, "acct-other", "c-2"), 404, "SignInNotFound", "started elsewhere")
    exchanges = len(world.fake.http.get("_control/oauth").json())
    evil = finish(admin, login, "acct-host", "c-2", tenant="https://evil.example/")
    refused(evil, 422, "SignInRefused", "is not an allowed Augment host")
    plain = finish(admin, start(admin), "acct-http", "c-2", tenant="http://d1.api.augmentcode.com/")
    refused(plain, 422, "SignInRefused", "must be https")
    assert len(world.fake.http.get("_control/oauth").json()) == exchanges, "no code was sent anywhere"

    # An unknown sign-in id; a pool user (no admin): refused before anything.
    made_up = {
        "loginId": "x" * 24,
        "answer": page_answer(login["url"], "c-3", tenant),
        "name": "acct-unknown",
    }
    refused(world.call(admin, FINISH, made_up), 404, "SignInNotFound", "no sign-in with this id")
    user = world.client("carl")
    refused(world.call(user, START), 403, "Forbidden", "pool admin")
    refused(finish(user, start(admin), "acct-user", "c-3"), 403, "Forbidden", "pool admin")

    # A sign-in older than its time (a console that gives sign-ins 1 ms).
    hasty = console_process(namespace, augment_tenant_hosts=TENANT_HOSTS, sign_in_seconds="0.001").client()
    assert hasty.login(world.tokens["boss"]).status_code == 200
    world.code("code-late")
    late = world.call(hasty, START).json()
    refused(finish(hasty, late, "acct-late", "code-late"), 422, "SignInRefused", "has expired")

    refused_names = ("acct-state", "acct-reused", "acct-other", "acct-host", "acct-http", "acct-user")
    for name in (*refused_names, "acct-unknown", "acct-late"):
        assert world.nothing_named(name), name
    names = sorted(t["name"] for t in admin.get("/api/admin/tokens").json()["items"])
    assert names == ["first"]
    assert not [text for text in world.seen if ACCESS_TOKEN in text]
    assert ACCESS_TOKEN not in world.console.log(5000)


def test_standing_shows_in_the_api_the_table_and_the_overview(world: World) -> None:
    knobs = {
        "spent": {"depleted": True},
        "low": {"credits_remaining": 50, "plan": "Pro"},
        "fine": {"credits_remaining": 740, "end_date": "2099-06-01T00:00:00Z"},
    }
    for name, knob in knobs.items():
        credential = f"cred-{name}-" + "0" * 40
        world.fake.http.put(f"_control/accounts/{credential}", json=knob).raise_for_status()
        world.pool.credential(f"{name}-cred", credential)
        world.pool.token(name, endpoint=world.fake.tenant(name))
    admin = world.client()

    def tokens() -> dict[str, dict[str, Any]] | None:
        items = admin.get("/api/admin/tokens").json()["items"]
        found = {t["name"]: t for t in items}
        done = all((found.get(n) or {}).get("account") and found[n]["account"]["active"] for n in knobs)
        return found if done and found["low"]["account"]["renewalDue"] else None

    found = wait_for(tokens, 60, interval=0.3, what="three accounts' standing in the console")
    spent, low, fine = found["spent"], found["low"], found["fine"]
    assert spent["state"] == "Retired" and spent["account"]["retired"] is True
    assert (
        spent["account"]["active"]["reason"] == "Depleted" and spent["account"]["active"]["status"] is False
    )
    assert low["state"] == "Healthy" and low["account"]["plan"] == "Pro"
    assert (
        low["account"]["renewalDue"]["status"] is True
        and low["account"]["renewalDue"]["reason"] == "CreditsLow"
    )
    assert (fine["account"]["creditsRemaining"], fine["account"]["creditsTotal"]) == (740, 1000)
    assert fine["account"]["renewalDue"]["reason"] == "NotDue" and fine["state"] == "Healthy"
    retired = admin.get("/api/admin/tokens", params={"state": "Retired"}).json()["items"]
    assert [t["name"] for t in retired] == ["spent"]

    def health() -> dict[str, int] | None:
        counts: dict[str, int] = admin.get("/api/admin/stats").json()["tokenHealth"]
        return counts if counts.get("Retired") == 1 else None

    counts = wait_for(health, 15, interval=0.5, what="the retired account counted")  # cached up to 5 s
    assert counts["Healthy"] == 2
    table = admin.get("/tokens/-/table").text
    assert '<tr data-token="spent" class="retired">' in table and "Depleted" in table
    assert "Renewal due" in table and "50 / 1,000" in table and "2099-06-01" in table
    overview = admin.get("/overview").text
    assert "· 1 retired" in overview
