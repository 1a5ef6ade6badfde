"""The admin CLI against the real API server: what it creates is what kubectl sees, and back."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from typer.testing import CliRunner, Result

from tokenpool.cli.main import app
from tokenpool.contract import compiled as contract
from tokenpool.dev.controlplane import ControlPlane, free_port

pytestmark = pytest.mark.integration
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
TOKENPOOL = Path(sys.executable).parent / "tokenpool"


@pytest.fixture
def tp(control_plane: ControlPlane, namespace: str) -> Callable[..., Result]:
    """Run `tokenpool <args> --kubeconfig <admin> -n <namespace>` in-process."""

    def run(*args: str) -> Result:
        argv = [*args, "--kubeconfig", control_plane.kubeconfig, "-n", namespace]
        return CliRunner().invoke(app, argv)

    return run


def custom(kube_api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kube_api)


def get(kube_api: kubernetes.client.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(kube_api).get_namespaced_custom_object(
        contract.GROUP, contract.VERSION, ns, plural, name
    )
    return obj


def apply_yaml(kubectl: Kubectl, ns: str, text: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=text)


def user_yaml(name: str, spec: str = "{}") -> str:
    return f"apiVersion: tokenpool.io/v1alpha1\nkind: PoolUser\nmetadata: {{name: {name}}}\nspec: {spec}\n"


UPSTREAMS = """
apiVersion: v1
kind: Secret
metadata: {name: up-a-cred}
stringData: {token: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}
---
apiVersion: tokenpool.io/v1alpha1
kind: UpstreamToken
metadata: {name: up-a, labels: {tier: gold}}
spec: {endpoint: "https://d5.api.augmentcode.com/", credentialSecretRef: {name: up-a-cred}}
---
apiVersion: tokenpool.io/v1alpha1
kind: UpstreamToken
metadata: {name: up-b, labels: {tier: gold}}
spec: {endpoint: "https://d6.api.augmentcode.com/", credentialSecretRef: {name: up-a-cred}}
"""


def test_allocate_by_names_and_by_selector(
    tp: Callable[..., Result], kubectl: Kubectl, kube_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    apply_yaml(kubectl, namespace, UPSTREAMS)
    apply_yaml(kubectl, namespace, user_yaml("carol", "{role: User, tokenQuota: 3}"))

    # No operator in this test: --wait 0 (see the operator-backed test below for the verdict).
    res = tp(
        "allocate",
        "carol",
        "--tokens",
        "up-a, up-b",
        "--priority",
        "2",
        "--name",
        "carol-named",
        "--wait",
        "0",
    )
    assert res.exit_code == 0, res.output
    spec = get(kube_api, namespace, contract.PLURAL_ALLOCATION, "carol-named")["spec"]
    assert {k: spec[k] for k in ("user", "tokens", "priority")} == {
        "user": "carol",
        "tokens": ["up-a", "up-b"],
        "priority": 2,
    }

    res = tp(
        "allocate", "carol", "--selector", "tier=gold", "--count", "1", "--name", "carol-sel", "--wait", "0"
    )
    assert res.exit_code == 0, res.output
    spec = get(kube_api, namespace, contract.PLURAL_ALLOCATION, "carol-sel")["spec"]
    assert spec["selector"] == {"matchLabels": {"tier": "gold"}}
    assert spec["count"] == 1
    # kubectl sees the same objects.
    names = kubectl("get", "tokenallocations", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(names) == [
        "tokenallocation.tokenpool.io/carol-named",
        "tokenallocation.tokenpool.io/carol-sel",
    ]


def test_allocate_rejects_bad_input_clearly(
    tp: Callable[..., Result], kubectl: Kubectl, namespace: str
) -> None:
    res = tp("allocate", "nobody", "--tokens", "up-a")
    assert res.exit_code == 1
    assert "not found" in res.output and "Traceback" not in res.output
    res = tp("allocate", "nobody", "--tokens", "a", "--selector", "k=v", "--count", "1")
    assert res.exit_code == 2
    assert "either --tokens or --selector" in res.output
    res = tp("allocate", "nobody", "--selector", "novalue", "--count", "1")
    assert res.exit_code == 2
    assert "key=value" in res.output


def test_lists_show_usage_columns_from_status(
    tp: Callable[..., Result], kubectl: Kubectl, kube_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    apply_yaml(kubectl, namespace, UPSTREAMS)
    apply_yaml(kubectl, namespace, user_yaml("dan"))
    # Usage as the proxy writes it, through the status subresource.
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    usage = {
        "total": {"requests": 1234, "successes": 1200, "errors": 34},
        "today": {"date": today, "requests": 56, "successes": 55, "errors": 1, "credits": 0.125},
        "lastUsedAt": f"{today}T01:02:03Z",
    }
    for plural, name in ((contract.PLURAL_USER, "dan"), (contract.PLURAL_UPSTREAM, "up-a")):
        custom(kube_api).patch_namespaced_custom_object_status(
            contract.GROUP, contract.VERSION, namespace, plural, name, {"status": {"usage": usage}}
        )

    res = tp("users", "list")
    assert res.exit_code == 0, res.output
    header, row = res.output.splitlines()[:2]
    assert header.split()[:2] == ["NAME", "ROLE"]
    assert "REQ TODAY" in header
    assert row.split()[0] == "dan"
    assert "56" in row.split() and "1234" in row.split() and f"{today}T01:02:03Z" in row
    assert "CREDITS TODAY" in header and "0.125" in row.split()

    res = tp("tokens", "list")
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line.split() for line in res.output.splitlines()[1:]}
    assert set(rows) == {"up-a", "up-b"}
    assert "1234" in rows["up-a"] and "56" in rows["up-a"]
    assert "1234" not in rows["up-b"]


def test_empty_namespace_and_missing_user(tp: Callable[..., Result]) -> None:
    res = tp("users", "list")
    assert res.exit_code == 0 and "No PoolUsers" in res.output
    res = tp("users", "token", "ghost")
    assert res.exit_code == 1 and "not found" in res.output


def test_unreachable_cluster_is_one_clear_line(tmp_path: Path, control_plane: ControlPlane) -> None:
    res = CliRunner().invoke(app, ["users", "list", "--kubeconfig", str(tmp_path / "missing")])
    assert res.exit_code == 1
    assert "cannot load kubeconfig" in res.output and "Traceback" not in res.output


def test_users_token_reads_a_brought_token_like_kubectl(
    tp: Callable[..., Result], kubectl: Kubectl, namespace: str
) -> None:
    """A user with personalTokenSecretRef (e.g. migrated): the CLI and kubectl read the same value."""
    token = "migrated-token-0123456789abcdef"
    apply_yaml(
        kubectl,
        namespace,
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: erin-old}}\nstringData: {{token: {token}}}\n---\n"
        "apiVersion: tokenpool.io/v1alpha1\nkind: PoolUser\nmetadata: {name: erin}\n"
        "spec: {personalTokenSecretRef: {name: erin-old}}\n",
    )
    res = tp("users", "token", "erin")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == token
    raw = kubectl("get", "secret", "erin-old", "-n", namespace, "-o", "jsonpath={.data.token}").stdout
    assert base64.b64decode(raw).decode() == token


def test_console_script_help_reads_well() -> None:
    out = subprocess.run(
        [str(TOKENPOOL), "users", "create", "--help"], capture_output=True, text=True, check=True
    )
    assert "personal token" in out.stdout and "--quota" in out.stdout


def test_users_create_prints_the_generated_token_once_then_token_and_rotate(
    tp: Callable[..., Result],
    kubectl: Kubectl,
    kube_api: kubernetes.client.ApiClient,
    namespace: str,
    operator_process: Callable[..., Any],
) -> None:
    operator_process(namespace)
    res = tp("users", "create", "frank", "--email", "frank@example.com", "--role", "Admin", "--quota", "2")
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert len(token) == 64 and int(token, 16) >= 0  # only the token on stdout: scriptable
    spec = get(kube_api, namespace, contract.PLURAL_USER, "frank")["spec"]
    assert (spec["email"], spec["role"], spec["tokenQuota"]) == ("frank@example.com", "Admin", 2)
    # The same value kubectl reads from the operator's Secret.
    raw = kubectl(
        "get",
        "secret",
        contract.personal_token_secret_name("frank"),
        "-n",
        namespace,
        "-o",
        "jsonpath={.data.token}",
    ).stdout
    assert base64.b64decode(raw).decode() == token

    res = tp("users", "token", "frank")
    assert res.exit_code == 0 and res.stdout.strip() == token

    res = tp("users", "rotate", "frank")
    assert res.exit_code == 0, res.output
    rotated = res.stdout.strip()
    assert len(rotated) == 64 and rotated != token
    assert tp("users", "token", "frank").stdout.strip() == rotated

    res = tp("users", "create", "frank")
    assert res.exit_code == 1 and "already exists" in res.output


def test_users_create_rejects_bad_input_before_the_cluster(tp: Callable[..., Result]) -> None:
    res = tp("users", "create", "gina", "--role", "Root")
    assert res.exit_code == 2 and "User or Admin" in res.output
    res = tp("users", "create", "gina", "--email", "not-an-email", "--timeout", "1")
    assert res.exit_code == 1 and "email must look like" in res.output


def test_rotate_refuses_a_brought_token(tp: Callable[..., Result], kubectl: Kubectl, namespace: str) -> None:
    apply_yaml(kubectl, namespace, user_yaml("hank", "{personalTokenSecretRef: {name: hank-old}}"))
    res = tp("users", "rotate", "hank")
    assert res.exit_code == 1
    assert "hank-old" in res.output and "personalTokenSecretRef" in res.output


def test_context_and_its_namespace_are_used_like_kubectl(
    tmp_path: Path, control_plane: ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """No -n: the namespace comes from the chosen context, as with kubectl."""
    apply_yaml(kubectl, namespace, user_yaml("ivy"))
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    base = config["contexts"][0]["context"]
    config["contexts"].append({"name": "team", "context": {**base, "namespace": namespace}})
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config))

    res = CliRunner().invoke(app, ["users", "list", "--kubeconfig", str(path), "--context", "team"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].split()[0] == "ivy"
    # The current context has no namespace: "default", where there is no such user.
    res = CliRunner().invoke(app, ["users", "list", "--kubeconfig", str(path)])
    assert res.exit_code == 0 and "No PoolUsers in namespace default" in res.output
    res = CliRunner().invoke(app, ["users", "list", "--kubeconfig", str(path), "--context", "nope"])
    assert res.exit_code == 1 and "nope" in res.output


def test_unreachable_api_server_is_one_clear_line(tmp_path: Path, control_plane: ControlPlane) -> None:
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "closed.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    res = CliRunner().invoke(app, ["tokens", "list", "--kubeconfig", str(path)])
    assert res.exit_code == 1
    assert "cannot reach the Kubernetes API server" in res.output and "Traceback" not in res.output


def test_allocate_reports_the_operators_verdict(
    tp: Callable[..., Result], kubectl: Kubectl, namespace: str, operator_process: Callable[..., Any]
) -> None:
    apply_yaml(kubectl, namespace, UPSTREAMS)
    apply_yaml(kubectl, namespace, user_yaml("jo", "{tokenQuota: 1}"))
    operator_process(namespace)
    res = tp("allocate", "jo", "--tokens", "up-a", "--name", "jo-first")
    assert res.exit_code == 0, res.output
    assert "granted: up-a" in res.output
    res = tp("allocate", "jo", "--tokens", "up-b", "--name", "jo-second")
    assert res.exit_code == 1, res.output
    assert "QuotaExceeded" in res.output
