"""The chart installed on the test cluster, as a platform admin would: ``helm upgrade --install
--wait`` with the local image, the proxy's Service as a NodePort, and the fake upstream on the
host. :class:`Release` is what the tests drive it with.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from tests.support.cluster.figures import record_figure
from tests.support.cluster.upstream import ReachableFakeUpstream, address_towards
from tests.support.helm import CHART, Helm
from tests.support.kubectl import run_kubectl
from tests.support.tokenpool_objects import Pool

NAMESPACE = "tokenpool-e2e"
RELEASE = "tp"
HELM_TIMEOUT = "6m"


@dataclass
class Release:
    kubeconfig: str
    namespace: str
    image: str
    helm: Helm
    api: kubernetes.client.ApiClient
    fake: ReachableFakeUpstream
    proxy_url: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pool(self) -> Pool:
        return Pool(self.api, self.namespace)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        return run_kubectl(*args, kubeconfig=self.kubeconfig, input=input, timeout=timeout).stdout

    def pods(self, component: str) -> list[kubernetes.client.V1Pod]:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def ready_pods(self, component: str) -> list[kubernetes.client.V1Pod]:
        return [p for p in self.pods(component) if p.metadata.deletion_timestamp is None and _ready(p)]

    def upgrade(self, *sets: str, wait: bool = True) -> float:
        """``helm upgrade --reuse-values --set …``; returns how long it took."""
        started = time.monotonic()
        args = [a for s in sets for a in ("--set", s)]
        wait_args = ["--wait", "--timeout", HELM_TIMEOUT] if wait else []
        self.helm.run(
            "upgrade", RELEASE, str(CHART), "-n", self.namespace, "--reuse-values", *args, *wait_args
        )
        return time.monotonic() - started

    def exec_python(self, pod: str, code: str) -> str:
        """Run ``python3 -c code`` inside a running container (kubectl exec through the kubelet)."""
        return self.kubectl("exec", "-n", self.namespace, pod, "--", "python3", "-c", code)


def _ready(pod: kubernetes.client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _node_address(core: kubernetes.client.CoreV1Api) -> str:
    node = core.list_node().items[0]
    return next(a.address for a in node.status.addresses if a.type == "InternalIP")


def _proxy_node_port(core: kubernetes.client.CoreV1Api, namespace: str) -> int:
    svc = core.read_namespaced_service(f"{RELEASE}-tokenpool-proxy", namespace)
    return int(svc.spec.ports[0].node_port)


@contextlib.contextmanager
def install_release(kubeconfig: str, image: str, helm: Helm, log_dir: Path) -> Iterator[Release]:
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    core = kubernetes.client.CoreV1Api(api)
    node_ip = _node_address(core)
    fake = ReachableFakeUpstream(log_dir, address_towards(node_ip))
    h = helm.with_kubeconfig(Path(kubeconfig))
    h.timeout = 600
    repository, tag = image.rsplit(":", 1)
    values: dict[str, Any] = {
        "image.repository": repository,
        "image.tag": tag,
        "image.pullPolicy": "Never",  # nothing is pulled: the image was imported into the node
        "proxy.service.type": "NodePort",
        "proxy.flushIntervalSeconds": 1,
        "logging.format": "text",
    }
    # The fake upstream's CA, trusted by the proxy pods for upstream HTTPS (and nothing else).
    trust = log_dir / "upstream-ca-values.yaml"
    trust.write_text(yaml.safe_dump({"proxy": {
        "extraVolumes": [{"name": "upstream-ca", "configMap": {"name": "upstream-ca"}}],
        "extraVolumeMounts": [{"name": "upstream-ca", "mountPath": "/etc/upstream-ca", "readOnly": True}],
        "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/upstream-ca/ca.crt"}],
    }}))  # fmt: skip
    started = time.monotonic()
    try:
        with contextlib.suppress(kubernetes.client.ApiException):
            core.create_namespace(
                kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE))
            )
        meta = kubernetes.client.V1ObjectMeta(name="upstream-ca")
        ca_map = kubernetes.client.V1ConfigMap(metadata=meta, data={"ca.crt": fake.ca_pem})
        core.create_namespaced_config_map(NAMESPACE, ca_map)
        h.run(
            # --take-ownership: CRDs a previous install left (helm.sh/resource-policy: keep) are adopted.
            "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--take-ownership",
            "--values", str(trust),
            *[a for k, v in values.items() for a in ("--set", f"{k}={v}")],
            "--wait", "--timeout", HELM_TIMEOUT,
        )  # fmt: skip
        installed = time.monotonic() - started
        url = f"http://{node_ip}:{_proxy_node_port(core, NAMESPACE)}"
        release = Release(
            kubeconfig, NAMESPACE, image, h, api, fake, url, {"helm install --wait": round(installed, 1)}
        )
        record_figure(
            f"release {RELEASE}: helm upgrade --install --wait {installed:.1f}s; proxy Service at {url}"
        )
        yield release
    finally:
        with contextlib.suppress(Exception):
            h.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "2m")
        with contextlib.suppress(Exception):
            core.delete_namespace(NAMESPACE)
        fake.stop()
        api.close()
