"""Command lines of the cluster's processes: what each is told and why (the flags that differ
from a default install are commented). Paths come from the work directory; binaries from the
caches hack/ fills."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster.configs import (
    APISERVER_PORT,
    NODE_IP,
    NODE_NAME,
    SERVICE_ACCOUNT_ISSUER,
    SERVICE_CIDR,
)
from tests.support.cluster.pki import ClusterPki


@dataclass(frozen=True)
class Binaries:
    control_plane: Path  # etcd, kube-apiserver, helm (hack/build-binaries.sh)
    node: Path  # kubelet, kube-controller-manager, kube-scheduler, kube-proxy, crictl, pause


def etcd(bins: Binaries, work: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return [
        str(bins.control_plane / "etcd"),
        "--name=default",
        f"--data-dir={work / 'etcd'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",  # the data is thrown away with the cluster
        "--log-level=warn",
    ]


def apiserver(bins: Binaries, work: Path, pki: ClusterPki, etcd_port: int) -> list[str]:
    kubelet_client = pki.clients["apiserver-kubelet-client"]
    return [
        str(bins.control_plane / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        # On the node's own (non-loopback) address: the endpoint reconciler publishes it as the
        # `kubernetes` Service's endpoint, which pods reach through kube-proxy.
        f"--bind-address={NODE_IP}",
        f"--advertise-address={NODE_IP}",
        f"--secure-port={APISERVER_PORT}",
        f"--cert-dir={work / 'apiserver-certs'}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_public_key}",
        f"--service-account-signing-key-file={pki.sa_private_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Logs, exec and port-forward go to the kubelet by its InternalIP, over verified TLS.
        f"--kubelet-client-certificate={kubelet_client.cert}",
        f"--kubelet-client-key={kubelet_client.key}",
        f"--kubelet-certificate-authority={pki.ca.cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
    ]


def controller_manager(bins: Binaries, work: Path, pki: ClusterPki, kubeconfig: Path) -> list[str]:
    return [
        str(bins.node / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={NODE_IP}",
        "--secure-port=10257",
        f"--cert-dir={work / 'controller-manager-certs'}",
        "--leader-elect=false",
        # Each controller acts as its own ServiceAccount, as in kubeadm clusters.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_private_key}",
        # Published into every namespace as ConfigMap kube-root-ca.crt (projected token volumes).
        f"--root-ca-file={pki.ca.cert}",
        "--profiling=false",
    ]


def scheduler(bins: Binaries, work: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bins.node / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={NODE_IP}",
        "--secure-port=10259",
        f"--cert-dir={work / 'scheduler-certs'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kubelet(bins: Binaries, work: Path, config: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bins.node / "kubelet"),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={work / 'kubelet'}",
        f"--cert-dir={work / 'kubelet-pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=1",
    ]


def kube_proxy(bins: Binaries, config: Path) -> list[str]:
    return [str(bins.node / "kube-proxy"), f"--config={config}"]


def crictl(bins: Binaries, socket: Path, *args: str) -> list[str]:
    endpoint = f"unix://{socket}"
    return [
        str(bins.node / "crictl"),
        f"--runtime-endpoint={endpoint}",
        f"--image-endpoint={endpoint}",
        "--timeout=30s",
        *args,
    ]
