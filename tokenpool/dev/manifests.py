"""Server-side apply of plain manifests through the project's client (no kubectl needed).

`tokenpool dev` applies the CRDs, a namespace and the demo manifests with it. Server-side apply
makes every run idempotent: a second `tokenpool dev` re-applies the same documents and nothing
changes, and fields other managers own (the operator's status) are left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, core_path, cr_path

FIELD_MANAGER = "tokenpool-dev"
CORE_PLURALS = {"Secret": "secrets", "ConfigMap": "configmaps"}
CR_PLURALS = {
    contract.KIND_USER: contract.PLURAL_USER,
    contract.KIND_UPSTREAM: contract.PLURAL_UPSTREAM,
    contract.KIND_ALLOCATION: contract.PLURAL_ALLOCATION,
}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def load_yaml_dir(directory: Path) -> list[dict[str, Any]]:
    """Every document of every *.yaml / *.yml file in ``directory``, in file-name order."""
    docs: list[dict[str, Any]] = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _path(doc: dict[str, Any], ns: str) -> str:
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind == "Namespace":
        return f"/api/v1/namespaces/{name}"
    if kind == "CustomResourceDefinition":
        return f"{CRD_PATH}/{name}"
    if kind in CORE_PLURALS:
        return core_path(ns, CORE_PLURALS[kind], name)
    if kind in CR_PLURALS:
        return cr_path(ns, CR_PLURALS[kind], name)
    raise ValueError(f"cannot apply {kind} objects")


async def apply(kube: KubeClient, doc: dict[str, Any], namespace: str | None = None) -> object:
    """Server-side apply one document (forcing conflicts: this tool owns what it applies).

    Namespaced objects without ``metadata.namespace`` go to ``namespace``.
    """
    ns = doc["metadata"].get("namespace") or namespace or "default"
    body = doc
    if doc["kind"] not in ("Namespace", "CustomResourceDefinition"):
        body = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
    return await kube.apply(_path(doc, ns), body, FIELD_MANAGER)


async def apply_all(kube: KubeClient, docs: Iterable[dict[str, Any]], namespace: str | None = None) -> None:
    for doc in docs:
        await apply(kube, doc, namespace)


async def established(kube: KubeClient, name: str) -> bool:
    """Whether the CRD exists and serves its resources."""
    crd = await kube.get(f"{CRD_PATH}/{name}")
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


async def namespace_exists(kube: KubeClient, name: str) -> bool:
    return await kube.get(f"/api/v1/namespaces/{name}") is not None


async def wait_crds_established(kube: KubeClient, names: Iterable[str], within_s: float = 30.0) -> None:
    """Wait until each CRD serves its resources (creating CRs before that fails with 404)."""
    deadline = time.monotonic() + within_s
    for name in names:
        while not await established(kube, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established after {within_s:g}s")
            await asyncio.sleep(0.1)
