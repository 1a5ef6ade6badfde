"""`tokenpool dev` the way a newcomer uses it: run it, copy what it prints, press Ctrl-C.

The command runs as a real subprocess (embedded control plane, operator, proxy, fake upstream);
the test executes the printed `curl` commands in a shell and the printed Python snippet with the
`openai` SDK, then interrupts it and checks that every process it started is gone. A second run
on the same state directory must come back with the same personal tokens.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_for
from tokenpool.devtools import binaries
from tokenpool.devtools.controlplane import free_port
from tokenpool.devtools.fake_augment import DEFAULTS

pytestmark = pytest.mark.e2e
TOKENPOOL = Path(sys.executable).parent / "tokenpool"
READY_LINE = "Press Ctrl-C to stop everything."


def descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def still_running(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def code_blocks(text: str, lang: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"```{lang}\n(.*?)```", text, re.S)]


class DevRun:
    def __init__(self, state: Path, port: int, namespace: str, log_dir: Path) -> None:
        self.out = log_dir / f"dev-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        self.started = time.monotonic()
        # With TOKENPOOL_KUBECONFIG set (an existing cluster), `tokenpool dev` uses it, as `make dev` would.
        argv = [str(TOKENPOOL), "dev", "--state-dir", str(state), "--port", str(port), "-n", namespace]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.out.read_text()

    def wait_ready(self) -> float:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"tokenpool dev exited {self.proc.returncode}:\n{self.err.read_text()}")
            return READY_LINE in self.text()

        wait_for(ready, timeout=240, interval=0.2, what="tokenpool dev's instructions")
        return time.monotonic() - self.started

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def personal_tokens(text: str) -> dict[str, str]:
    return dict(re.findall(r"personal token\s+\((\S+)\): ([0-9a-f]{64})", text))


@pytest.fixture
def dev_runs(tmp_path: Path) -> Any:
    if not os.environ.get("TOKENPOOL_KUBECONFIG"):
        try:
            binaries.find()
        except binaries.BinariesNotFound as exc:
            pytest.fail(str(exc), pytrace=False)
    runs: list[DevRun] = []
    namespace = f"dev-e2e-{secrets.token_hex(3)}"

    def start(state: Path, port: int) -> DevRun:
        run = DevRun(state, port, namespace, tmp_path)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()
        print(f"--- tokenpool dev stderr ---\n{run.err.read_text()}")


def test_dev_prints_working_instructions_and_stops_cleanly(tmp_path: Path, dev_runs: Any) -> None:
    state, port = tmp_path / "state", free_port()
    run = dev_runs(state, port)
    first_start = run.wait_ready()
    text = run.text()
    assert f"Proxy URL: http://127.0.0.1:{port}" in text
    tokens = personal_tokens(text)
    assert len(tokens) >= 2, text  # the demo admin and at least one user
    assert "Admin personal token" in text and "User personal token" in text

    info_curl, tokens_curl = code_blocks(text, "bash")
    info = json.loads(
        subprocess.run(["bash", "-c", info_curl], capture_output=True, text=True, check=True).stdout
    )
    assert info["status"] == "success"
    assert info["user"]["username"] in tokens
    listed = json.loads(
        subprocess.run(["bash", "-c", tokens_curl], capture_output=True, text=True, check=True).stdout
    )
    assert listed["status"] == "success"
    assert listed["total_count"] == len(listed["tokens"]) > 0
    assert all(t["tenant_url"].startswith("http://127.0.0.1:") for t in listed["tokens"])

    (snippet,) = code_blocks(text, "python")
    (tmp_path / "chat.py").write_text(snippet)
    chat = subprocess.run(
        [sys.executable, str(tmp_path / "chat.py")], capture_output=True, text=True, timeout=60, check=False
    )
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() == DEFAULTS["text"]

    children = descendants(run.proc.pid)
    assert len(children) >= 5  # etcd, kube-apiserver, fake upstream, operator, proxy
    assert run.interrupt() == 0
    assert "stopped" in run.err.read_text()
    left = [pid for pid, start in children.items() if still_running(pid, start)]
    assert not left, f"processes left behind: {left}"

    # Second run on the same state: same cluster data, same personal tokens, ready quickly.
    again = dev_runs(state, port)
    second_start = again.wait_ready()
    assert personal_tokens(again.text()) == tokens
    print(f"tokenpool dev ready: first run {first_start:.1f}s, second run {second_start:.1f}s")
    assert again.interrupt() == 0
