"""The chart's pods from the locally built image, as users run them: Ready through their own
probes, the securityContext in force inside the running containers, the examples served through
the proxy's Service to the plugin-shaped client and the OpenAI SDK, usage written back."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.support.cluster.release import Release
from tests.support.plugin_client import PluginClient
from tests.support.waiting import wait_for
from tokenpool.contract import compiled as contract

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# What the running process itself sees: ids, capabilities, no_new_privs, seccomp mode, and
# whether the root filesystem and /tmp take writes.
INSPECT = """
import json, os
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        os.remove(os.path.join(path, ".probe"))
        return True
    except OSError as exc:
        return exc.errno
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
    "NoNewPrivs": status["NoNewPrivs"].strip(), "Seccomp": status["Seccomp"].strip(),
    "root": writable("/"), "opt": writable("/opt/tokenpool"), "tmp": writable("/tmp")}))
"""


def test_operator_proxy_and_console_pods_ready_through_their_probes(release: Release) -> None:
    operator, proxies, console = (release.ready_pods(c) for c in ("operator", "proxy", "console"))
    assert len(operator) == 1 and len(proxies) == 2 and len(console) == 1, (operator, proxies, console)
    for pod in [*operator, *proxies, *console]:
        [container] = pod.spec.containers
        assert container.image == release.image and container.image_pull_policy == "Never"
        [status] = pod.status.container_statuses
        assert status.ready and status.restart_count == 0, status
    for pod in proxies:
        assert pod.spec.containers[0].readiness_probe.http_get.path == "/readyz"
    # Nothing was pulled (or failed to be); a readiness probe refused before the server listens
    # is expected, a restart is not (restart_count above).
    events = release.core.list_namespaced_event(release.namespace).items
    assert not [e for e in events if e.reason in ("Pulling", "Failed", "BackOff", "ErrImageNeverPull")], [
        (e.reason, e.message) for e in events if e.type == "Warning"
    ]


@pytest.mark.parametrize("component", ["operator", "proxy", "console"])
def test_security_context_is_what_runs(release: Release, component: str) -> None:
    pod = release.ready_pods(component)[0]
    seen = json.loads(release.exec_python(pod.metadata.name, INSPECT))
    assert (seen["uid"], seen["gid"]) == (65532, 65532), seen
    assert int(seen["CapEff"], 16) == 0 and int(seen["CapBnd"], 16) == 0, seen  # all dropped
    assert seen["NoNewPrivs"] == "1", seen  # allowPrivilegeEscalation: false
    assert seen["Seccomp"] == "2", seen  # RuntimeDefault profile (filter mode)
    assert seen["root"] == 30 and seen["opt"] == 30, seen  # EROFS: read-only root filesystem
    assert seen["tmp"] is True, seen  # the chart's emptyDir


def test_image_holds_no_dev_tooling(release: Release) -> None:
    """`pip install .` only: no test or lint packages, no fake upstream or control plane."""
    pod = release.ready_pods("proxy")[0].metadata.name
    absent = ["pytest", "mypy", "ruff", "openai", "httpx", "tokenpool.dev", "tokenpool.dev.fake_upstream"]
    code = (
        "import importlib.util, json\n"
        "def there(m):\n"
        "    try:\n"
        "        return importlib.util.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        f"print(json.dumps({{m: there(m) for m in {absent!r}}}))"
    )
    found = json.loads(release.exec_python(pod, code))
    assert not any(found.values()), found
    assert "Usage" in release.kubectl("exec", "-n", release.namespace, pod, "--", "tokenpool", "--help")


def _examples_for(release: Release) -> tuple[str, dict[str, str]]:
    """examples/ as they are, but the upstreams pointed at the fake and given fresh credentials."""
    docs: list[dict[str, Any]] = []
    credentials: dict[str, str] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc["kind"] == "Secret":
                credentials[doc["metadata"]["name"]] = doc["stringData"]["token"] = secrets.token_hex(16)
            if doc["kind"] == "UpstreamToken":
                doc["spec"]["endpoint"] = release.fake.tenant(doc["metadata"]["name"])
            docs.append(doc)
    return yaml.safe_dump_all(docs), credentials


def test_examples_served_through_the_service(release: Release) -> None:
    manifest, credentials = _examples_for(release)
    release.kubectl("apply", "-n", release.namespace, "-f", "-", input=manifest)
    pool = release.pool
    tokens = {
        u: wait_for(lambda u=u: pool.personal_token(u), 90, what=f"{u}'s token") for u in ("alice", "bob")
    }

    # The plugin: validate the personal token, list the pool (least used first), use one.
    alice = PluginClient(release.proxy_url, tokens["alice"])
    info = wait_for(alice.validate, 60, what="the proxy knows alice")
    assert info is not None and info["user"]["username"] == "alice"
    listed = wait_for(
        lambda: len(alice.list_tokens()) == 2 and alice.list_tokens(), 60, what="alice's 2 tokens"
    )
    assert {t["token"] for t in listed} <= set(credentials.values())
    assert alice.pick_and_use() is not None

    # The OpenAI SDK, streamed and not, as bob; the fake upstream saw bob's allocated credentials.
    client = openai.OpenAI(
        base_url=f"{release.proxy_url}/v1", api_key=tokens["bob"], max_retries=0, timeout=60
    )
    answer = client.chat.completions.create(
        model="augment-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    stream = client.chat.completions.create(
        model="augment-chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == answer.choices[0].message.content
    seen = [r["token"] for r in release.fake.requests()]
    bob_credentials = {credentials["augment-account-1"], credentials["augment-account-2"]}
    assert len(seen) == 2 and set(seen) <= bob_credentials, seen

    # Usage lands in bob's status, written by a proxy pod.
    def bob_requests() -> int:
        usage = (pool.get(contract.KIND_USER, "bob").get("status") or {}).get("usage") or {}
        return int((usage.get("total") or {}).get("requests", 0))

    wait_for(lambda: bob_requests() == 2, 60, what="bob's usage total = 2")
