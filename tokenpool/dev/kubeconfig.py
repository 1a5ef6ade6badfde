"""Reading and writing kubeconfig files for the local control plane and identities in it.

Kubeconfigs written here embed their certificates (``*-data``) so a file is self-contained: it can
be handed to kubectl, Kopf, helm or a subprocess without the control plane's directory layout.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(
    path: Path | str,
    server: str,
    ca_pem: bytes | None,
    user: str,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
) -> str:
    """Write a one-context kubeconfig authenticating as ``user`` (by client cert or bearer token).

    ``ca_pem=None`` means the server's certificate is not verified (only for an external cluster
    whose kubeconfig says so). Returns the path as a string; the file is private (0600).
    """
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is None:
        cluster["insecure-skip-tls-verify"] = True
    else:
        cluster["certificate-authority-data"] = _b64(ca_pem)
    credentials: dict[str, Any] = {}
    if token is not None:
        credentials["token"] = token
    if client_cert_pem is not None and client_key_pem is not None:
        credentials["client-certificate-data"] = _b64(client_cert_pem)
        credentials["client-key-data"] = _b64(client_key_pem)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tokenpool", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "tokenpool", "user": user}}],
        "current-context": user,
        "preferences": {},
    }
    target = Path(path)
    target.touch(mode=0o600, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(target)


@dataclass(frozen=True)
class ClusterInfo:
    """What another kubeconfig for the same cluster needs: its URL and how to trust it."""

    server: str
    ca_pem: bytes | None


def cluster_info(path: Path | str) -> ClusterInfo:
    """The current context's server URL and CA (inline data or file) of an existing kubeconfig."""
    source = Path(path)
    doc = yaml.safe_load(source.read_text())
    context_name = doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
    if context_name not in contexts:
        raise ValueError(f"{source}: current-context {context_name!r} is not defined")
    cluster_name = contexts[context_name]["cluster"]
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters") or []}
    if cluster_name not in clusters:
        raise ValueError(f"{source}: cluster {cluster_name!r} is not defined")
    cluster = clusters[cluster_name]
    ca_pem: bytes | None = None
    if cluster.get("certificate-authority-data"):
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        ca_pem = (ca_path if ca_path.is_absolute() else source.parent / ca_path).read_bytes()
    return ClusterInfo(server=cluster["server"], ca_pem=ca_pem)
