"""A single-node Kubernetes cluster on this host, started and stopped by the test session.

Start: host network (dummy interface with the node address, pod isolation), certificates and
kubeconfigs, containerd with the images imported, etcd + kube-apiserver, then the controller
manager, scheduler, kubelet and kube-proxy; ready when the node is Ready, the default
ServiceAccount exists and kube-proxy has programmed the `kubernetes` Service.

Stop (also from SIGINT/SIGTERM and atexit): the node components, every pod sandbox through CRI
(crictl: CNI DEL releases addresses, veths and namespaces), the control plane, containerd, then
kube-proxy's iptables chains, leftover mounts, kubelet's cgroups, the interfaces and sysctls.
What is still different on the host from before the start is reported by :meth:`stop`.

One cluster per host at a time (its addresses and interface names are fixed): a lock file says
who runs it; a record of the work directory lets the next session sweep up after one that was
killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import kubernetes

from tests.support.cluster import components as cmd
from tests.support.cluster import host
from tests.support.cluster.artifacts import Images
from tests.support.cluster.configs import (
    APISERVER_PORT,
    KUBERNETES_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    Layout,
    write_configs,
)
from tests.support.cluster.pki import generate
from tests.support.cluster.project import ManagedProcess, free_port, register_cleanup, unregister_cleanup

LOCK = Path("/run/tokenpool-cluster.lock")
RECORD = Path("/run/tokenpool-cluster.json")
SERVER = f"https://{NODE_IP}:{APISERVER_PORT}"


class ClusterError(RuntimeError):
    """The cluster did not come up; the message carries the relevant log tails."""


class LocalCluster:
    def __init__(self, bins: cmd.Binaries, images: Images, logs: Path) -> None:
        self.bins, self.images, self.logs = bins, images, logs
        self.work = Path(tempfile.mkdtemp(prefix="tp-cluster-"))
        self.layout = Layout(self.work)
        self.kubeconfig = str(self.work / "admin.kubeconfig")  # written by write_configs
        self.server = SERVER
        self.processes: dict[str, ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self._lock: IO[str] | None = None
        self._before: host.HostState | None = None
        self._sysctls: dict[str, str] = {}
        self._stopped = False

    # --- start ---------------------------------------------------------------------------------

    @classmethod
    def launch(cls, bins: cmd.Binaries, images: Images, logs: Path, timeout: float = 240) -> LocalCluster:
        cluster = cls(bins, images, logs)
        register_cleanup(cluster._stop_and_report)
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _mark(self, step: str, since: float) -> float:
        now = time.monotonic()
        self.timings[step] = round(now - since, 1)
        return now

    def _start(self, timeout: float) -> None:
        t = time.monotonic()
        self._take_lock()
        self._before = host.snapshot()
        self._sysctls = host.read_sysctls()
        host.set_up_network()
        pki = generate(self.work / "pki", NODE_NAME, NODE_IP, KUBERNETES_SERVICE_IP)
        configs = write_configs(self.layout, pki, self.images.pause, SERVER)
        t = self._mark("host", t)
        self._spawn("containerd", ["containerd", f"--config={configs['containerd']}"])
        self._wait(self._containerd_up, 60, "containerd answering")
        for tar in (self.images.pause_tar, self.images.image_tar):
            self._ctr("images", "import", str(tar))
        t = self._mark("containerd+images", t)
        etcd_port = free_port()
        self._spawn("etcd", cmd.etcd(self.bins, self.work, etcd_port, free_port()))
        self._spawn("kube-apiserver", cmd.apiserver(self.bins, self.work, pki, etcd_port))
        api = kubernetes.config.new_client_from_config(config_file=self.kubeconfig)
        try:
            core = kubernetes.client.CoreV1Api(api)
            # /readyz covers the post-start hooks, among them the bootstrap RBAC policy the
            # other components need from their first request on.
            self._wait(
                lambda: _readyz(api) and core.read_namespace("kube-system"), timeout, "kube-apiserver ready"
            )
            t = self._mark("apiserver", t)
            self._spawn(
                "kube-controller-manager", cmd.controller_manager(self.bins, self.work, pki, configs["kcm"])
            )
            self._spawn("kube-scheduler", cmd.scheduler(self.bins, self.work, configs["scheduler"]))
            self._spawn(
                "kubelet", cmd.kubelet(self.bins, self.work, configs["kubelet"], configs["kubelet-kc"])
            )
            self._spawn("kube-proxy", cmd.kube_proxy(self.bins, configs["kube-proxy"]))
            self._wait(lambda: _node_ready(core), timeout, f"node {NODE_NAME} Ready")
            self._wait(
                lambda: core.read_namespaced_service_account("default", "default"), timeout, "default SA"
            )
            self._wait(_service_programmed, timeout, "kube-proxy's rules for the kubernetes Service")
            self._mark("node", t)
        finally:
            api.close()

    def _take_lock(self) -> None:
        lock = LOCK.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            owner = RECORD.read_text() if RECORD.exists() else "unknown"
            raise ClusterError(f"another test cluster runs on this host ({owner}); one at a time") from None
        self._lock = lock  # from here on the host's cluster state is ours to clean up
        if RECORD.exists():  # its owner died without tearing down (SIGKILL): sweep up after it
            record = json.loads(RECORD.read_text())
            previous = Path(record["workdir"])
            self._kube_proxy_cleanup()
            host.sweep(previous)
            host.remove_chains(host.snapshot().chains - frozenset(record["chains"]))
            host.write_sysctls(record["sysctls"])
            shutil.rmtree(previous, ignore_errors=True)
        state = {"chains": sorted(host.snapshot().chains), "sysctls": host.read_sysctls()}
        RECORD.write_text(json.dumps({"pid": os.getpid(), "workdir": str(self.work), **state}))

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.processes[name] = ManagedProcess(name, argv, self.logs / f"{name}.log")

    def _wait(self, predicate: object, timeout: float, what: str) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if predicate():
                    return
            dead = [n for n, p in self.processes.items() if not p.alive()]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"timed out after {timeout}s"
                raise ClusterError(f"waiting for {what}: {why}\n{self.log_tail(40)}")
            time.sleep(0.2)  # polling external processes, not test synchronisation

    def _ctr(self, *args: str) -> str:
        argv = ["ctr", f"--address={self.layout.containerd_socket}", "--namespace=k8s.io", *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout

    def _containerd_up(self) -> bool:
        return self.layout.containerd_socket.exists() and bool(self._ctr("version"))

    # --- use -----------------------------------------------------------------------------------

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig)

    def crictl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = cmd.crictl(self.bins, self.layout.containerd_socket, *args)
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)

    def log_tail(self, n: int = 100) -> str:
        return "\n".join(
            f"==> {name} ({p.log_path}) <==\n{p.log_tail(n)}" for name, p in self.processes.items()
        )

    # --- stop ----------------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Tear everything down; return what is still left on the host (empty when clean)."""
        if self._stopped:
            return []
        self._stopped = True
        unregister_cleanup(self._stop_and_report)
        # A second Ctrl-C must not abort the teardown half-way (containers would outlive it).
        with _signals_deferred():
            return self._stop()

    def _stop(self) -> list[str]:
        for name in ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            if name in self.processes:
                self.processes[name].stop(15)
        if "containerd" in self.processes and self.processes["containerd"].alive():
            ids = self.crictl("pods", "-q").stdout.split()
            if ids:
                self.crictl("stopp", *ids)
                self.crictl("rmp", "--force", *ids)
        for name in ("kube-apiserver", "etcd", "containerd"):
            if name in self.processes:
                self.processes[name].stop(15)
        if self._lock is not None:
            self._kube_proxy_cleanup()
            host.sweep(self.work)
            host.write_sysctls(self._sysctls)
            if self._before is not None:  # kubelet's own chains (KUBE-FIREWALL, canaries)
                host.remove_chains(host.snapshot().chains - self._before.chains)
        problems = host.leftovers(self._before, host.snapshot(), self.work) if self._before else []
        shutil.rmtree(self.work, ignore_errors=True)
        if self._lock is not None:
            RECORD.unlink(missing_ok=True)
            self._lock.close()
        return problems

    def _stop_and_report(self) -> None:
        """The cleanup run on SIGINT/SIGTERM/exit: nobody reads a return value there."""
        problems = self.stop()
        print(f"test cluster stopped; left on the host: {problems or 'nothing'}", file=sys.stderr, flush=True)

    def _kube_proxy_cleanup(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [str(self.bins.node / "kube-proxy"), "--cleanup"],
                capture_output=True,
                check=False,
                timeout=60,
            )


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM meanwhile (main thread only; elsewhere signals go to the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _readyz(api: kubernetes.client.ApiClient) -> bool:
    response = api.call_api("GET", f"{api.configuration.host}/readyz", _request_timeout=5)
    return bool(response.status == 200)


def _node_ready(core: kubernetes.client.CoreV1Api) -> bool:
    node = core.read_node(NODE_NAME)
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _service_programmed() -> bool:
    rules = subprocess.run(["iptables", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True, text=True)
    return KUBERNETES_SERVICE_IP in rules.stdout
