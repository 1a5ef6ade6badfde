"""A real, throw-away Kubernetes control plane (etcd + kube-apiserver) without Docker.

Used by the test fixtures and by `tokenpool dev`. There is no kubelet (pods never run) and no
controller-manager (namespaces never finish deleting, owner-reference GC never happens), but the
API surface is the real one: schema and CEL validation, RBAC, TokenRequest, watches, SSA.

Flags chosen to start fast (a few seconds) and stay close to a real cluster:
* ``--authorization-mode=Node,RBAC`` and the default admission plugins, as kubeadm clusters have;
* ``--enable-priority-and-fairness=false``: APF adds start-up work and throttles bursts of test
  requests; nothing here depends on it;
* etcd with ``--unsafe-no-fsync``: its data is thrown away anyway, fsync would dominate latency;
* ECDSA keys (see :mod:`tokenpool.dev.pki`).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tokenpool.dev import binaries, kubeconfig, pki
from tokenpool.dev.processes import ManagedProcess, register_cleanup, unregister_cleanup

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "tokenpool-admin"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the log tails."""


def free_port() -> int:
    """A currently free loopback TCP port (the OS picks it; the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """An API server to test against: either started here (:meth:`launch`) or an existing
    cluster given by a kubeconfig (:meth:`from_kubeconfig`, e.g. kind)."""

    def __init__(self, server: str, kubeconfig_path: str, ca_pem: bytes | None) -> None:
        self.server = server
        self.kubeconfig = kubeconfig_path
        self.ca_pem = ca_pem
        self.workdir: Path | None = None
        self.processes: list[ManagedProcess] = []
        self._owns_workdir = False

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> ControlPlane:
        """Use an existing cluster; :meth:`stop` leaves it alone."""
        info = kubeconfig.cluster_info(path)
        return cls(server=info.server, kubeconfig_path=str(Path(path).resolve()), ca_pem=info.ca_pem)

    @classmethod
    def launch(
        cls, bin_dir: Path | None = None, workdir: Path | None = None, timeout: float = 60.0
    ) -> ControlPlane:
        """Start etcd and kube-apiserver, wait until ready, write ``<workdir>/admin.kubeconfig``.

        ``workdir`` defaults to a new temporary directory, removed again by :meth:`stop`.
        """
        bin_dir = bin_dir or binaries.find()
        owns = workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="tokenpool-cp-")) if workdir is None else workdir
        workdir.mkdir(parents=True, exist_ok=True)
        certs = pki.generate(workdir / "pki", ADMIN_USER)
        port = free_port()
        server = f"https://127.0.0.1:{port}"
        path = kubeconfig.write(
            workdir / "admin.kubeconfig",
            server,
            certs.ca_cert.read_bytes(),
            ADMIN_USER,
            client_cert_pem=certs.admin_cert.read_bytes(),
            client_key_pem=certs.admin_key.read_bytes(),
        )
        plane = cls(server=server, kubeconfig_path=path, ca_pem=certs.ca_cert.read_bytes())
        plane.workdir, plane._owns_workdir = workdir, owns
        register_cleanup(plane.stop)
        try:
            plane._start_processes(bin_dir, certs, port)
            plane._wait_ready(certs, timeout)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _start_processes(self, bin_dir: Path, certs: pki.Pki, port: int) -> None:
        assert self.workdir is not None
        client, peer = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        etcd = [
            str(bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self.processes.append(ManagedProcess("etcd", etcd, self.workdir / "etcd.log"))
        apiserver = [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses loopback addresses; nothing runs in-cluster here
            # that would need the `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={certs.sa_public_key}",
            f"--service-account-signing-key-file={certs.sa_private_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ]
        # Started together: the API server retries etcd until it answers, so nothing is gained
        # by waiting for etcd first.
        self.processes.append(ManagedProcess("kube-apiserver", apiserver, self.workdir / "apiserver.log"))

    def _wait_ready(self, certs: pki.Pki, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        deadline = time.monotonic() + timeout
        # /readyz covers etcd and the post-start hooks (bootstrap RBAC, CRD informers...);
        # the `default` namespace is created by a controller shortly after.
        for path in ("/readyz", "/api/v1/namespaces/default"):
            while not self._get_ok(context, path):
                dead = [p.name for p in self.processes if not p.alive()]
                if dead:
                    raise ControlPlaneError(f"{', '.join(dead)} exited during start-up\n{self.log_tail(40)}")
                if time.monotonic() > deadline:
                    raise ControlPlaneError(
                        f"{self.server}{path} not ready after {timeout}s\n{self.log_tail(40)}"
                    )
                time.sleep(0.1)  # polling an external process, not test synchronisation

    def _get_ok(self, context: ssl.SSLContext, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.server + path, context=context, timeout=5) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # --- use ----------------------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when this object started (and owns) the control-plane processes."""
        return self.workdir is not None

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes}

    def log_tail(self, n: int = 200) -> str:
        """The last ``n`` lines of each control-plane log, each under a ``==> name <==`` header."""
        if not self.embedded:
            return f"(external cluster {self.server}: no control-plane logs here)"
        if not self.processes:
            return "(control plane stopped)"
        return "\n".join(f"==> {p.name} ({p.log_path}) <==\n{p.log_tail(n)}" for p in self.processes)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the API server, then etcd, and remove a temporary workdir. Idempotent."""
        unregister_cleanup(self.stop)
        while self.processes:
            self.processes.pop().stop(timeout)
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._owns_workdir = False
