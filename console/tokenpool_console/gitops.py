"""Objects a GitOps controller owns are read-only in the console: an edit made here would be
reverted at the controller's next sync. The console shows what to commit instead.

Recognised: Argo CD (its tracking annotation or instance label, or its controller in
``managedFields``) and Flux (its kustomize/helm controller labels or managers).
"""

from __future__ import annotations

from typing import Any

import yaml

ARGO_CD = "Argo CD"
FLUX = "Flux"
_LABELS = {
    "argocd.argoproj.io/instance": ARGO_CD,
    "kustomize.toolkit.fluxcd.io/name": FLUX,
    "helm.toolkit.fluxcd.io/name": FLUX,
}
_ANNOTATIONS = {"argocd.argoproj.io/tracking-id": ARGO_CD}
_MANAGERS = {
    "argocd-controller": ARGO_CD,
    "argocd-application-controller": ARGO_CD,
    "kustomize-controller": FLUX,
    "helm-controller": FLUX,
}


def managed_by(metadata: dict[str, Any]) -> str:
    """The GitOps tool that owns an object ("Argo CD", "Flux"), or "" when none does."""
    for key, tool in _LABELS.items():
        if key in (metadata.get("labels") or {}):
            return tool
    for key, tool in _ANNOTATIONS.items():
        if key in (metadata.get("annotations") or {}):
            return tool
    for entry in metadata.get("managedFields") or ():
        manager = _MANAGERS.get(str(entry.get("manager") or ""))
        if manager:
            return manager
    return ""


def change_to_commit(api_version: str, kind: str, name: str, namespace: str, patch: dict[str, Any]) -> str:
    """The YAML fragment to merge into the object's manifest in Git (the console's refused change)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, **(patch.get("metadata") or {})}
    doc: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    doc.update({k: v for k, v in patch.items() if k != "metadata"})
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
