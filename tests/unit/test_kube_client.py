"""The project's Kubernetes client: configuration found like kubectl finds it, credentials that
rotate, retries only where safe, errors without secrets, and watch semantics (410, ERROR events).

The API server here is a scripted aiohttp server; the real one is exercised by every integration
test (operator, proxy and CLI all use this client)."""

from __future__ import annotations

import base64
import stat
import sys
from pathlib import Path

import orjson
import pytest
import yaml
from aiohttp import web

from tokenpool.dev.controlplane import free_port
from tokenpool.kube import credentials
from tokenpool.kube.client import KubeClient, KubeError, WatchExpired
from tokenpool.kube.credentials import ClusterConfig, ConfigError, TokenSource


def _kubeconfig(
    path: Path, server: str, user: dict, *, context_ns: str | None = None, name: str = "c"
) -> Path:
    ctx: dict = {"cluster": f"{name}-cluster", "user": f"{name}-user"}
    if context_ns:
        ctx["namespace"] = context_ns
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"{name}-cluster", "cluster": {"server": server}}],
        "users": [{"name": f"{name}-user", "user": user}],
        "contexts": [{"name": name, "context": ctx}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_order_explicit_then_env_then_in_cluster_then_home(tmp_path, monkeypatch) -> None:
    explicit = _kubeconfig(tmp_path / "a", "https://a.example:6443", {"token": "ta"}, context_ns="team-a")
    env_file = _kubeconfig(tmp_path / "b", "https://b.example:6443", {"token": "tb"})
    monkeypatch.setenv("KUBECONFIG", str(env_file))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setattr(credentials.Path, "home", lambda: tmp_path / "nohome")
    assert credentials.load(str(explicit)).server == "https://a.example:6443"
    assert credentials.load(str(explicit)).namespace == "team-a"
    assert credentials.load().server == "https://b.example:6443"
    assert credentials.load().namespace == "default"
    monkeypatch.delenv("KUBECONFIG")
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    (sa / "namespace").write_text("tokenpool-system")
    monkeypatch.setattr(credentials, "IN_CLUSTER_DIR", sa)
    cfg = credentials.in_cluster(sa)
    assert (cfg.server, cfg.namespace) == ("https://10.0.0.1:443", "tokenpool-system")
    assert cfg.token is not None and cfg.token.current() == "sa-token"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="cannot load kubeconfig: no file at"):
        credentials.load()


def test_merged_kubeconfig_files_first_definition_wins(tmp_path, monkeypatch) -> None:
    first = _kubeconfig(tmp_path / "1", "https://first.example", {"token": "t1"})
    second = _kubeconfig(tmp_path / "2", "https://second.example", {"token": "t2"}, name="other")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    assert credentials.load().server == "https://first.example"
    assert credentials.load(context="other").server == "https://second.example"
    with pytest.raises(ConfigError, match="context 'nope' is not in the kubeconfig"):
        credentials.load(context="nope")


def test_auth_provider_is_refused_with_a_clear_message(tmp_path) -> None:
    path = _kubeconfig(tmp_path / "k", "https://x.example", {"auth-provider": {"name": "oidc"}})
    with pytest.raises(ConfigError, match="use an exec credential plugin"):
        credentials.load(str(path))


async def test_exec_plugin_token_is_cached_until_expiry_and_rerun_after_a_401(tmp_path) -> None:
    counter = tmp_path / "runs"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os, pathlib\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': f'exec-{n}', "
        "'expirationTimestamp': '2999-01-01T00:00:00Z'}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    cfg = ClusterConfig(
        server="http://unused",
        token=TokenSource(exec_spec={"command": sys.executable, "args": [str(plugin)]}),
    )
    assert await cfg.authorization() == "Bearer exec-1"
    assert await cfg.authorization() == "Bearer exec-1"  # cached: not run again
    assert cfg.token is not None
    cfg.token.invalidate()
    assert await cfg.authorization() == "Bearer exec-2"
    assert counter.read_text() == "2"


def test_token_file_is_reread_after_invalidation(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("one")
    source = TokenSource(path=path)
    assert source.current() == "one"
    path.write_text("two")
    assert source.current() == "one"  # within the re-read interval
    source.invalidate()
    assert source.current() == "two"


def test_client_certificate_data_is_loaded(tmp_path) -> None:
    from tokenpool.dev import pki

    files = pki.generate(tmp_path)
    b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "certificate-authority-data": b64(files.ca_cert),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "client-certificate-data": b64(files.admin_cert),
                            "client-key-data": b64(files.admin_key),
                        },
                    }
                ],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    cfg = credentials.load(str(path))
    assert cfg.client_cert == files.admin_cert.read_bytes()
    assert cfg.ssl_context() is not False  # the pair loads (a wrong pair raises here)
    assert "BEGIN" not in repr(cfg)  # keys never in reprs (and so never in logs)


class Scripted:
    """Answers each request with the next scripted (status, body, headers); records requests."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, object, dict[str, str]]] = []
        self.seen: list[tuple[str, str, str | None]] = []
        self.impersonation: list[tuple[list[str], list[str]]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, request.headers.get("Authorization")))
        self.impersonation.append(
            (request.headers.getall("Impersonate-User", []), request.headers.getall("Impersonate-Group", []))
        )
        status, body, headers = self.answers.pop(0) if self.answers else (200, {}, {})
        if isinstance(body, list):  # a watch stream of events
            resp = web.StreamResponse(status=status)
            await resp.prepare(request)
            for event in body:
                await resp.write(orjson.dumps(event) + b"\n")
            return resp
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def api():
    scripted = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    scripted.url = f"http://127.0.0.1:{port}"
    yield scripted
    await runner.cleanup()


async def test_retries_429_and_503_with_retry_after_then_succeeds(api) -> None:
    api.answers = [(429, {}, {"Retry-After": "0"}), (503, {}, {}), (200, {"ok": 1}, {})]
    async with KubeClient(
        ClusterConfig(server=api.url, token=TokenSource(static="t")), backoff_s=0.01
    ) as kube:
        assert await kube.get("/api/v1/x") == {"ok": 1}
    assert len(api.seen) == 3
    assert all(auth == "Bearer t" for _, _, auth in api.seen)


async def test_404_is_none_and_other_errors_carry_reason_and_message_not_the_body(api) -> None:
    secret_body = {"data": {"token": "c2VjcmV0"}}
    api.answers = [
        (404, {}, {}),
        (422, {"reason": "Invalid", "message": "spec.endpoint: must end with /"}, {}),
    ]
    async with KubeClient(ClusterConfig(server=api.url), retries=0) as kube:
        assert await kube.get("/api/v1/namespaces/n/secrets/s") is None
        with pytest.raises(KubeError) as err:
            await kube.create("/api/v1/namespaces/n/secrets", secret_body)
    assert (err.value.status, err.value.reason) == (422, "Invalid")
    assert "must end with /" in str(err.value)
    assert "c2VjcmV0" not in str(err.value)


async def test_a_401_reads_the_token_again_once(api, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    source = TokenSource(path=token_file)
    source.current()
    token_file.write_text("new")  # the kubelet rotated the projected token
    api.answers = [(401, {"reason": "Unauthorized"}, {}), (200, {"ok": 1}, {})]
    async with KubeClient(ClusterConfig(server=api.url, token=source)) as kube:
        assert await kube.get("/api/v1/x") == {"ok": 1}
    assert [auth for _, _, auth in api.seen] == ["Bearer old", "Bearer new"]


async def test_list_follows_continue_tokens_and_keeps_the_first_resource_version(api) -> None:
    api.answers = [
        (200, {"metadata": {"resourceVersion": "7", "continue": "abc"}, "items": [{"n": 1}]}, {}),
        (200, {"metadata": {"resourceVersion": "9"}, "items": [{"n": 2}]}, {}),
    ]
    async with KubeClient(ClusterConfig(server=api.url)) as kube:
        body = await kube.list("/api/v1/namespaces/n/configmaps", {"labelSelector": "a=b"}, page=1)
    assert body["items"] == [{"n": 1}, {"n": 2}]
    assert body["metadata"]["resourceVersion"] == "7"
    assert "continue=abc" in api.seen[1][1] and "labelSelector=a%3Db" in api.seen[1][1]


async def test_watch_yields_events_and_raises_expired_on_410(api) -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "2"}}}
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    api.answers = [(200, [added, gone], {}), (410, {"reason": "Expired"}, {})]
    async with KubeClient(ClusterConfig(server=api.url)) as kube:
        seen = []
        with pytest.raises(WatchExpired):
            async for event in kube.watch("/api/v1/namespaces/n/configmaps", "1"):
                seen.append(event)
        assert seen == [added]
        with pytest.raises(WatchExpired):
            async for _ in kube.watch("/api/v1/namespaces/n/configmaps", "1"):
                pass
    assert "watch=1" in api.seen[0][1] and "resourceVersion=1" in api.seen[0][1]


async def test_connection_refused_is_retried_then_raised(tmp_path) -> None:
    import aiohttp

    async with KubeClient(
        ClusterConfig(server=f"http://127.0.0.1:{free_port()}"), retries=2, backoff_s=0.01
    ) as kube:
        with pytest.raises(aiohttp.ClientConnectionError):
            await kube.get("/api/v1/x")


def test_exec_plugin_failure_names_the_command_not_its_output(tmp_path) -> None:
    plugin = tmp_path / "fail.py"
    plugin.write_text("import sys; print('SECRET-OUTPUT'); sys.exit(3)\n")
    with pytest.raises(ConfigError) as err:
        credentials.run_exec_plugin({"command": sys.executable, "args": [str(plugin)]})
    assert "exited with 3" in str(err.value)
    assert "SECRET-OUTPUT" not in str(err.value)


async def test_impersonating_client_sends_who_and_shares_the_connections(api) -> None:
    """The console writes on behalf of a person: Impersonate-User and one Impersonate-Group header
    per group, on top of the client's own credentials; the view shares the parent's session."""
    from tokenpool.kube.client import Impersonation

    async with KubeClient(ClusterConfig(server=api.url, token=TokenSource(static="t"))) as kube:
        view = kube.impersonating(Impersonation("alice@example.com", ("admins", "system:authenticated")))
        await view.merge_patch("/apis/x/v1/namespaces/n/things/a", {"spec": {}})
        await kube.get("/api/v1/x")
        await view.close()  # closes nothing: the parent's session still works
        await kube.get("/api/v1/y")
        assert view._open() is kube._open()
    assert api.impersonation[0] == (["alice@example.com"], ["admins", "system:authenticated"])
    assert api.impersonation[1] == ([], []) and api.impersonation[2] == ([], [])
    assert all(auth == "Bearer t" for _, _, auth in api.seen)
