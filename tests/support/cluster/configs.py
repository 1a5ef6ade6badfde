"""The test cluster's addresses, file layout and the configuration files of its components.

Addresses are unmistakably the test's own, inside 198.18.0.0/15 (reserved for network
benchmarking, never routed): the node's address on an interface of its own, the pod range on a CNI
bridge, the Service range. Pods get no DNS server and no masquerading: they reach only the host
(the API server, the fake upstream) and each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster.pki import ClusterPki
from tests.support.cluster.project import kubeconfig

NODE_NAME = "tokenpool-node"
NODE_IP = "198.19.255.1"
NODE_IFACE = "tp-node0"
BRIDGE = "tp-cni0"
POD_CIDR = "198.18.0.0/24"
SERVICE_CIDR = "198.19.0.0/24"
KUBERNETES_SERVICE_IP = "198.19.0.1"
APISERVER_PORT = 6443
KUBELET_PORT = 10250
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
RUNC = "/usr/sbin/runc"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Layout:
    """Every path a component writes to, under one work directory (removed at the end)."""

    root: Path

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"


def containerd_config(layout: Layout, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2): its own root, state and socket; the CRI plugin with
    our CNI configuration and pause image. ``restrict_oom_score_adj``: this host refuses to lower
    ``oom_score_adj`` (runc fails with "can't get final child's PID from pipe" otherwise)."""
    c = layout.root / "containerd"
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
"""


def cni_conflist(layout: Layout) -> str:
    """bridge + host-local + portmap (containerd adds loopback itself). No ipMasq: pod traffic
    never leaves the host with a rewritten address."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "tokenpool",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.root / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=1,
    )


def kubelet_config(layout: Layout, ca: Path, serving_cert: Path, serving_key: Path) -> str:
    """KubeletConfiguration for this host: cgroup v1 (``failCgroupV1: false``) with the cgroupfs
    driver (no systemd), image garbage collection off (the imported images cannot be pulled
    again), no disk-pressure eviction on a busy shared disk, no DNS for pods."""
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": NODE_IP,
        "healthzPort": 10248,
        "tlsCertFile": str(serving_cert),
        "tlsPrivateKeyFile": str(serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "podCIDR": POD_CIDR,
        "resolvConf": "",
        "failSwapOn": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "podLogsDir": str(layout.root / "pod-logs"),
        "volumePluginDir": str(layout.root / "kubelet-plugins"),
        "serializeImagePulls": False,
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "maxPods": 32,
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }
    return json.dumps(doc, indent=1)


def kube_proxy_config(kubeconfig: Path) -> str:
    """iptables mode; leaves the host's conntrack sysctls and route_localnet as they are."""
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"{NODE_IP}:10256",
        "metricsBindAddress": f"{NODE_IP}:10249",
        "clusterCIDR": POD_CIDR,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    return json.dumps(doc, indent=1)


def write_configs(layout: Layout, pki: ClusterPki, sandbox_image: str, server: str) -> dict[str, Path]:
    """Write every configuration file and kubeconfig (one identity per component) into the work
    directory; return their paths by role (``admin`` is ``<root>/admin.kubeconfig``)."""
    files: dict[str, Path] = {}

    def put(key: str, name: str, text: str) -> None:
        files[key] = layout.root / name
        files[key].write_text(text)

    layout.cni_conf_dir.mkdir(parents=True)
    (layout.cni_conf_dir / "10-tokenpool.conflist").write_text(cni_conflist(layout))
    put("containerd", "containerd.toml", containerd_config(layout, sandbox_image))
    serving = pki.kubelet_serving
    put("kubelet", "kubelet.json", kubelet_config(layout, pki.ca.cert, serving.cert, serving.key))
    for key, identity in (
        ("admin", "admin"),
        ("kcm", "controller-manager"),
        ("scheduler", "scheduler"),
        ("kubelet-kc", "kubelet"),
        ("proxy-kc", "kube-proxy"),
    ):
        pair = pki.clients[identity]
        path = layout.root / f"{identity}.kubeconfig"
        kubeconfig.write(
            path,
            server,
            pki.ca.cert_pem(),
            identity,
            client_cert_pem=pair.cert_pem(),
            client_key_pem=pair.key_pem(),
        )
        files[key] = path
    put("kube-proxy", "kube-proxy.json", kube_proxy_config(files["proxy-kc"]))
    return files
