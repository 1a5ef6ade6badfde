"""Ctrl-C on a running cluster with a pod in it leaves the host as it was: no process, mount,
network interface, iptables chain, cgroup or changed sysctl. Runs before the session's cluster
(its own cluster in a child process, interrupted like a person would)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import host
from tests.support.cluster.artifacts import REPO
from tests.support.kubectl import run_kubectl
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster

POD = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
  - name: sleeper
    image: IMAGE
    imagePullPolicy: Never
    command: ["python3", "-c", "import time; time.sleep(3600)"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {medium: Memory}}]
"""


def test_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    if os.environ.get("TOKENPOOL_KUBECONFIG"):
        pytest.skip("an external cluster is not ours to stop")
    if os.geteuid() != 0:
        pytest.skip("the cluster tier needs root (containerd, kubelet, host network)")
    before = host.snapshot()
    out = tmp_path / "cluster.out"
    with out.open("w") as sink:
        argv = [sys.executable, "-m", "tests.support.cluster", str(tmp_path / "logs")]
        child = subprocess.Popen(
            argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        ready = wait_for(
            lambda: re.search(r"^READY kubeconfig=(\S+)", out.read_text(), re.M), 600, 0.5, "READY"
        )
        kubeconfig = ready.group(1)
        workdir = Path(kubeconfig).parent
        image = re.search(r"image=(\S+)", out.read_text())
        assert image, out.read_text()[-2000:]
        run_kubectl("apply", "-f", "-", kubeconfig=kubeconfig, input=POD.replace("IMAGE", image.group(1)))
        wait_for(
            lambda: "Running" in run_kubectl("get", "pod", "sleeper", "-o", "jsonpath={.status.phase}",
                                             kubeconfig=kubeconfig).stdout,
            120, 0.5, "the pod running",
        )  # fmt: skip
        assert host.processes_using(workdir) and host.container_processes(), (
            "nothing to clean up: proves nothing"
        )
        os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        child.wait(180)
    finally:
        if child.poll() is None:
            child.kill()
    text = out.read_text()
    assert "left on the host: nothing" in text, text[-3000:]
    problems = host.leftovers(before, host.snapshot(), workdir)
    assert problems == [], problems
    assert not workdir.exists()
