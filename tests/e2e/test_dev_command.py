"""`make dev` the way a newcomer uses it: run it, copy what it prints, press Ctrl-C.

The README's command runs as a real subprocess (embedded control plane, operator, proxy, fake upstream);
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

import httpx
import pytest

from tests.support.waiting import wait_for
from tokenpool.dev import binaries
from tokenpool.dev.controlplane import free_port
from tokenpool.dev.fake_upstream import DEFAULTS

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]
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
        # The README's command, in its own session like a terminal's foreground job. With
        # TOKENPOOL_KUBECONFIG set (an existing cluster), `tokenpool dev` uses that cluster.
        args = f"--state-dir {state} --port {port} -n {namespace}"
        argv = ["make", "--no-print-directory", "dev", f"DEV_ARGS={args}"]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def text(self) -> str:
        return self.out.read_text()

    def wait_ready(self) -> float:
        # Exiting ends the wait too (wait_for retries a predicate that raises).
        wait_for(
            lambda: self.proc.poll() is not None or READY_LINE in self.text(),
            timeout=240,
            interval=0.2,
            what="tokenpool dev's instructions",
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"make dev exited {self.proc.returncode}:\n{self.err.read_text()}")
        return time.monotonic() - self.started

    def interrupt(self) -> None:
        """Ctrl-C as a terminal sends it: SIGINT to the foreground process group (make and
        `tokenpool dev`; the servers run in their own groups and are stopped by `tokenpool dev`)."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        assert "] stopped" in self.err.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def personal_tokens(text: str) -> dict[str, tuple[str, str]]:
    """name -> (role, token) from the "Personal tokens" lines."""
    return {
        n: (role, t) for n, role, t in re.findall(r"^  (\S+)\s+(Admin|User)\s+([0-9a-f]{64})$", text, re.M)
    }


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
    # The demo admin and at least one user.
    assert {role for role, _ in tokens.values()} == {"Admin", "User"}, text

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

    # The console: its URL and the demo admin's login, as printed.
    console = re.search(r"^Console \(.*\): (http://127\.0\.0\.1:\d+)$", text, re.M)
    login = re.search(
        r"log in as the demo admin '(\S+)' with its personal token: ([0-9a-f]{64})$", text, re.M
    )
    assert console and login, text
    assert tokens[login.group(1)] == ("Admin", login.group(2))
    answer = httpx.post(f"{console.group(1)}/api/auth/login", json={"token": login.group(2)}, timeout=10)
    assert answer.status_code == 200 and answer.json()["caller"]["role"] == "Admin"

    children = descendants(run.proc.pid)
    assert len(children) >= 6  # etcd, kube-apiserver, fake upstream, operator, proxy, console
    run.interrupt()
    left = [pid for pid, start in children.items() if still_running(pid, start)]
    assert not left, f"processes left behind: {left}"

    # Second run on the same state: same cluster data, same personal tokens, ready quickly.
    again = dev_runs(state, port)
    second_start = again.wait_ready()
    assert personal_tokens(again.text()) == tokens
    print(f"tokenpool dev ready: first run {first_start:.1f}s, second run {second_start:.1f}s")
    again.interrupt()


def test_dev_on_an_existing_cluster_with_real_tokens_starts_no_demo_and_leaves_the_cluster(
    tmp_path: Path,
    control_plane: Any,
    namespace: str,
    kubectl: Any,
) -> None:
    """--use-current-context: nothing is started for the cluster and nothing of it is stopped;
    UpstreamTokens an admin created (not the demo's) mean no fake upstream and no examples."""
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input="apiVersion: tokenpool.io/v1alpha1\nkind: UpstreamToken\nmetadata: {name: real-one}\n"
        "spec: {endpoint: 'https://d5.api.augmentcode.com/', credentialSecretRef: {name: real-one}}\n",
    )
    port = free_port()
    argv = [str(TOKENPOOL), "dev", "--use-current-context", "-n", namespace, "--port", str(port)]
    argv += ["--state-dir", str(tmp_path / "state")]
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    env = {**os.environ, "KUBECONFIG": control_plane.kubeconfig}
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
    try:
        wait_for(
            lambda: proc.poll() is not None or READY_LINE in out.read_text(),
            timeout=120,
            interval=0.2,
            what="tokenpool dev's instructions",
        )
        assert proc.poll() is None, f"tokenpool dev exited {proc.returncode}:\n{err.read_text()}"
        text = out.read_text()
        assert f"Proxy URL: http://127.0.0.1:{port}" in text
        assert "No demo users" in text and "Personal tokens" not in text
        names = {Path(f"/proc/{pid}/cmdline").read_bytes() for pid in descendants(proc.pid)}
        assert not any(b"fake_upstream" in n or b"kube-apiserver" in n for n in names)
        assert not (tmp_path / "state" / "controlplane").exists()
        # The printed KUBECONFIG is the one given: the admin CLI works on it.
        assert f"export KUBECONFIG={control_plane.kubeconfig}" in text
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not [pid for pid, start in children.items() if still_running(pid, start)]
        # The cluster is untouched and still serves.
        assert kubectl("get", "upstreamtokens", "-n", namespace, "-o", "name").stdout.strip() == (
            "upstreamtoken.tokenpool.io/real-one"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
