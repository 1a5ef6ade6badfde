"""Where the admin CLI talks to: a kubeconfig (file, context) and a namespace, like kubectl.

Resolution order matches kubectl so `tokenpool` and `kubectl` act on the same objects:
``--kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config`` (or the in-cluster service account),
``--context`` / the current context, ``--namespace`` / the context's namespace / ``default``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


class TargetError(RuntimeError):
    """No usable cluster configuration."""


@dataclass
class Target:
    api: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen: dict[str, Any] | None = active
    if context:
        chosen = next((c for c in contexts if c["name"] == context), None)
    ns = ((chosen or {}).get("context") or {}).get("namespace")
    return str(ns) if ns else None


def connect(
    kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
) -> Target:
    """An API client and the namespace to act in; raises :class:`TargetError` with a clear message."""
    kubeconfig = kubeconfig or None
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
        ns = namespace or _context_namespace(kubeconfig, context)
    except (ConfigException, FileNotFoundError) as exc:
        if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise TargetError(f"cannot load kubeconfig: {exc}") from exc
        config.load_incluster_config()
        api = client.ApiClient()
        ns = namespace or _incluster_namespace()
    return Target(api=api, namespace=ns or "default")


def _incluster_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None
