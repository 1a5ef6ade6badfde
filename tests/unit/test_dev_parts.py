"""Pure parts of `tokenpool dev`: the demo rewrite, the printed instructions, the build progress."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from tokenpool.contract import compiled as contract
from tokenpool.dev import binaries, build_progress
from tokenpool.dev.build_progress import Progress, bar, ensure_binaries
from tokenpool.dev.demo import DEMO_LABEL, Instructions, demo_users, point_at_fake
from tokenpool.dev.manifests import load_yaml_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_are_pointed_at_the_fake_upstream_in_memory_only() -> None:
    docs = load_yaml_dir(EXAMPLES)
    before = [d.get("spec", {}).get("endpoint") for d in docs]
    demo = point_at_fake(docs, "http://127.0.0.1:4242/")
    upstreams = [d for d in demo if d["kind"] == contract.KIND_UPSTREAM]
    assert len(upstreams) >= 2
    endpoints = [u["spec"]["endpoint"] for u in upstreams]
    assert all(e.startswith("http://127.0.0.1:4242/") and e.endswith("/") for e in endpoints)
    assert len(set(endpoints)) > 1  # one tenant per original host: tokens stay distinguishable
    assert [d.get("spec", {}).get("endpoint") for d in docs] == before  # the inputs are untouched
    assert all(d["metadata"]["labels"][DEMO_LABEL] == "true" for d in demo if d["kind"] != "Secret")


def test_demo_users_lists_admins_first() -> None:
    docs = [
        {"kind": contract.KIND_USER, "metadata": {"name": "u1"}, "spec": {}},
        {"kind": contract.KIND_USER, "metadata": {"name": "boss"}, "spec": {"role": "Admin"}},
        {"kind": "Secret", "metadata": {"name": "s"}},
    ]
    assert demo_users(docs) == [("boss", "Admin"), ("u1", "User")]


def test_instructions_use_the_users_token_and_quote_for_the_shell() -> None:
    info = Instructions(
        proxy_url="http://127.0.0.1:8080",
        namespace="tokenpool-dev",
        kubeconfig="/x/admin.kubeconfig",
        tokens=[("boss", "Admin", "a" * 64), ("u1", "User", "b" * 64)],
        model="augment-chat",
        logs="/x/logs",
        demo=True,
        console_url="http://127.0.0.1:8090",
    )
    text = info.render()
    assert "Console (dashboard, users, tokens, statistics; docs/console.md): http://127.0.0.1:8090" in text
    assert "log in as the demo admin 'boss' with its personal token: " + "a" * 64 in text
    curls = [line for line in text.splitlines() if line.startswith("curl ")]
    assert len(curls) == 2
    info_argv, tokens_argv = (shlex.split(line) for line in curls)
    assert info_argv[-1] == "http://127.0.0.1:8080/api/user/info?token=" + "b" * 64
    assert tokens_argv[tokens_argv.index("-H") + 1] == "Authorization: Bearer " + "b" * 64
    assert 'api_key="' + "b" * 64 + '"' in info.python_snippet()
    compile(info.python_snippet(), "chat.py", "exec")
    assert "  boss  Admin  " + "a" * 64 in text.splitlines()


def test_build_progress_follows_the_build_script() -> None:
    progress = Progress()
    assert progress.fraction() == 0
    progress.feed("[build-binaries] building etcd (this can take many minutes ...) ...")
    progress.feed("[build-binaries]   etcd: 400 packages compiled")
    mid_etcd = progress.fraction()
    assert 0 < mid_etcd < 0.15
    progress.feed("[build-binaries] built etcd in 120s")
    progress.feed("[build-binaries] building kube-apiserver (...) ...")
    assert progress.fraction() == 0.15
    progress.feed("[build-binaries]   kube-apiserver: 10000 packages compiled")
    assert progress.fraction() < 0.99
    for name in ("kube-apiserver", "helm"):
        progress.feed(f"[build-binaries] built {name} in 1s")
    assert progress.fraction() == 0.99  # never 100% before the script says where the binaries are
    line = bar(0.5, 600)
    assert "50%" in line and "10.0 min" in line and "~10 min left" in line


def _fake_build_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "build-binaries.sh"
    script.write_text(body)
    return script


def test_ensure_binaries_runs_the_build_and_reports_progress(tmp_path: Path, monkeypatch: Any) -> None:
    """Missing binaries: the build script runs, its stderr becomes progress, its last line is the dir."""

    def missing() -> Path:
        raise binaries.BinariesNotFound("not built")

    script = _fake_build_script(
        tmp_path,
        "echo '[build-binaries] building etcd ...' >&2\n"
        "echo '[build-binaries]   etcd: 200 packages compiled' >&2\n"
        "echo '[build-binaries] built etcd in 1s' >&2\n"
        f"echo {tmp_path}/bin\n",
    )
    monkeypatch.setattr(binaries, "find", missing)
    monkeypatch.setattr(binaries, "BUILD_SCRIPT", script)
    monkeypatch.setattr(build_progress, "build_running", lambda: None)
    said: list[str] = []
    assert ensure_binaries(said.append) == tmp_path / "bin"
    assert "15-25 minutes" in said[0]  # the estimate comes first
    assert any("built etcd" in line and "%" in line for line in said)


def test_ensure_binaries_failure_is_reported(tmp_path: Path, monkeypatch: Any) -> None:
    def missing() -> Path:
        raise binaries.BinariesNotFound("not built")

    script = _fake_build_script(tmp_path, "echo '[build-binaries] ERROR: Go is not installed' >&2\nexit 1\n")
    monkeypatch.setattr(binaries, "find", missing)
    monkeypatch.setattr(binaries, "BUILD_SCRIPT", script)
    monkeypatch.setattr(build_progress, "build_running", lambda: None)
    with pytest.raises(binaries.BinariesNotFound, match="Go is not installed"):
        ensure_binaries(lambda _: None)
