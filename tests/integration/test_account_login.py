"""`tokenpool tokens login`: an Augment account added by its OAuth sign-in, end to end.

The command runs as a real process, as an admin runs it: it prints the sign-in URL, the test
"signs in" (reads ``state`` and the PKCE challenge from the URL) and pastes the page's JSON on
standard input. The fake upstream plays the tenant's ``token`` endpoint (single-use codes)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes
import pytest

from tokenpool.contract import compiled as contract
from tokenpool.dev.controlplane import ControlPlane

pytestmark = pytest.mark.integration
TOKENPOOL = Path(sys.executable).parent / "tokenpool"
ACCESS_TOKEN = "acc-0123456789abcdef-secret"


class Login:
    """One `tokenpool tokens login` process, driven like a person at the terminal."""

    def __init__(self, plane: ControlPlane, namespace: str, name: str, *args: str) -> None:
        argv = [str(TOKENPOOL), "tokens", "login", name, "--kubeconfig", plane.kubeconfig, "-n", namespace]
        self.proc = subprocess.Popen(
            [*argv, "--allow-tenant-host", "127.0.0.1", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        lines = []
        while not (line := self.proc.stderr.readline()).startswith("https://"):
            assert line, "the command ended before printing the sign-in URL:\n" + "".join(lines)
            lines.append(line)
        self.url = line.strip()
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    def answer(self, code: str, tenant: str, state: str | None = None) -> tuple[int, str, str]:
        page = {"code": code, "state": state or self.query["state"], "tenant_url": tenant}
        out, err = self.proc.communicate(json.dumps(page) + "\n", timeout=60)
        return self.proc.returncode, out, err


def _secret(kube_api: kubernetes.client.ApiClient, ns: str, name: str) -> Any:
    try:
        return kubernetes.client.CoreV1Api(kube_api).read_namespaced_secret(name, ns)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _token(kube_api: kubernetes.client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.CustomObjectsApi(kube_api)
    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(
            contract.GROUP, contract.VERSION, ns, contract.PLURAL_UPSTREAM, name
        )
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def test_sign_in_creates_the_secret_and_a_ready_token(
    control_plane: ControlPlane, namespace: str, kube_api, operator_process, fake_upstream
) -> None:
    operator_process(namespace)
    fake_upstream.http.put("_control/oauth/code-1", json={"access_token": ACCESS_TOKEN}).raise_for_status()
    login = Login(control_plane, namespace, "acct-1", "--label", "pool=gold", "--max-concurrency", "2")
    assert login.url.startswith("https://auth.augmentcode.com/authorize?")
    assert login.query["client_id"] == "v" and login.query["prompt"] == "login"
    tenant = fake_upstream.tenant("d7")
    code, out, err = login.answer("code-1", tenant)
    assert code == 0, err
    assert "acct-1 is Ready" in out
    assert ACCESS_TOKEN not in out + err
    # PKCE: the verifier the server received is the one whose S256 the URL carried.
    [exchange] = fake_upstream.http.get("_control/oauth").json()
    digest = hashlib.sha256(exchange["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == login.query["code_challenge"]
    token = _token(kube_api, namespace, "acct-1")
    assert token is not None
    assert token["spec"]["endpoint"] == tenant and token["spec"]["provider"] == "Augment"
    assert token["spec"]["maxConcurrency"] == 2 and token["metadata"]["labels"] == {"pool": "gold"}
    secret = _secret(kube_api, namespace, "acct-1-credential")
    assert base64.b64decode(secret.data["token"]).decode() == ACCESS_TOKEN
    assert [o.uid for o in secret.metadata.owner_references] == [token["metadata"]["uid"]]
    # The access token is in that Secret and nowhere in the UpstreamToken.
    assert ACCESS_TOKEN not in json.dumps(token)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("state", "belongs to another sign-in"),
        ("reused", "refused the code"),
        ("expired", "this login has expired"),
        ("host", "is not an allowed Augment host"),
    ],
)
def test_refused_logins_create_nothing(
    control_plane: ControlPlane, namespace: str, kube_api, fake_upstream, case: str, message: str
) -> None:
    fake_upstream.http.put("_control/oauth/code-2", json={"access_token": ACCESS_TOKEN}).raise_for_status()
    tenant = fake_upstream.tenant("d7")
    args = ("--login-timeout", "0") if case == "expired" else ()
    if case == "reused":  # the code is spent by a first, successful exchange
        first = Login(control_plane, namespace, "first", "--wait", "0")
        assert first.answer("code-2", tenant)[0] == 0
    login = Login(control_plane, namespace, "acct-2", "--wait", "0", *args)
    if case == "host":
        tenant = "https://evil.example/"
    code, out, err = login.answer("code-2", tenant, state="forged-state" if case == "state" else None)
    assert code == 1, (out, err)
    assert message in err and "Traceback" not in err
    assert ACCESS_TOKEN not in out + err
    assert _token(kube_api, namespace, "acct-2") is None
    assert _secret(kube_api, namespace, "acct-2-credential") is None
