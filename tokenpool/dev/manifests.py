"""Server-side apply of plain manifests through the Python client (no kubectl needed).

`tokenpool dev` applies the CRDs, a namespace and the demo manifests with it. Server-side apply
makes every run idempotent: a second `tokenpool dev` re-applies the same documents and nothing
changes, and fields other managers own (the operator's status) are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tokenpool.contract import compiled as contract

FIELD_MANAGER = "tokenpool-dev"

APPLY = "application/apply-patch+yaml"
CORE_KINDS = ("Namespace", "Secret", "ConfigMap")


def load_yaml_dir(directory: Path) -> list[dict[str, Any]]:
    """Every document of every *.yaml / *.yml file in ``directory``, in file-name order."""
    docs: list[dict[str, Any]] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def apply(api: client.ApiClient, doc: dict[str, Any], namespace: str | None = None) -> object:
    """Server-side apply one document (forcing conflicts: this tool owns what it applies).

    Namespaced objects without ``metadata.namespace`` go to ``namespace``.
    """
    kind, name = doc["kind"], doc["metadata"]["name"]
    ns = doc["metadata"].get("namespace") or namespace or "default"
    opts: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
    if kind in CORE_KINDS:
        core = client.CoreV1Api(api)
        if kind == "Namespace":
            return core.patch_namespace(name, doc, **opts)
        body = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
        if kind == "Secret":
            return core.patch_namespaced_secret(name, ns, body, **opts)
        return core.patch_namespaced_config_map(name, ns, body, **opts)
    group, _, version = doc["apiVersion"].partition("/")
    custom = client.CustomObjectsApi(api)
    if kind == "CustomResourceDefinition":
        return custom.patch_cluster_custom_object(
            group, version, "customresourcedefinitions", name, doc, **opts
        )
    plurals = {
        contract.KIND_USER: contract.PLURAL_USER,
        contract.KIND_UPSTREAM: contract.PLURAL_UPSTREAM,
        contract.KIND_ALLOCATION: contract.PLURAL_ALLOCATION,
    }
    if kind not in plurals:
        raise ValueError(f"cannot apply {kind} objects")
    body = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
    return custom.patch_namespaced_custom_object(group, version, ns, plurals[kind], name, body, **opts)


def apply_all(api: client.ApiClient, docs: Iterable[dict[str, Any]], namespace: str | None = None) -> None:
    for doc in docs:
        apply(api, doc, namespace)


def established(api: client.ApiClient, name: str) -> bool:
    """Whether the CRD exists and serves its resources."""
    try:
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def namespace_exists(api: client.ApiClient, name: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wait_crds_established(api: client.ApiClient, names: Iterable[str], timeout: float = 30.0) -> None:
    """Block until each CRD serves its resources (creating CRs before that fails with 404)."""
    deadline = time.monotonic() + timeout
    for name in names:
        while not established(api, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {timeout:g}s")
            time.sleep(0.1)
