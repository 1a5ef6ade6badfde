"""Running the real ``helm`` binary (built by hack/build-binaries.sh) against the chart.

Helm keeps caches, repositories and plugins under its home folders; each runner gets private
ones so tests never read or write the user's ~/.config/helm.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tokenpool.dev import binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tokenpool"
ALL_FEATURES_VALUES = CHART / "ci" / "all-features-values.yaml"
CRDS_DIR = REPO / "crds"

# helm built from source (`go install`) reports Kubernetes v1.20 to templates unless told
# otherwise, which the chart's kubeVersion refuses: render for the API server the tests run.
KUBE_VERSION = binaries.kubernetes_version() or "v1.37.2"

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr (what a user would read)."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        self.stderr = result.stderr
        self.stdout = result.stdout


@dataclass
class Helm:
    binary: Path
    home: Path
    kubeconfig: Path | None = None
    timeout: float = 120.0
    _env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if self.kubeconfig is not None:
            self._env["KUBECONFIG"] = str(self.kubeconfig)

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        return Helm(self.binary, self.home, kubeconfig, self.timeout)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in args]
        result = subprocess.run(
            [str(self.binary), *argv],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HelmError(argv, result)
        return result

    def template(
        self,
        *values_files: Path,
        set_values: Mapping[str, str] | None = None,
        namespace: str = "tokenpool",
        release: str = "tp",
    ) -> list[Manifest]:
        """``helm template`` the chart; return the rendered objects."""
        out = self.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *value_args(values_files, set_values),
        )
        return parse_manifests(out.stdout)


def value_args(values_files: Iterable[Path] = (), set_values: Mapping[str, str] | None = None) -> list[str]:
    args: list[str] = []
    for path in values_files:
        args += ["--values", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def parse_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Iterable[Manifest], kind: str, component: str | None = None) -> Manifest:
    """The single object of ``kind`` (of one app.kubernetes.io/component, when given)."""
    found = [
        m
        for m in by_kind(manifests, kind)
        if component is None or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, (
        f"expected one {kind} {component or ''}, found {[m['metadata']['name'] for m in found]}"
    )
    return found[0]


def container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: Manifest) -> dict[str, Any]:
    """Container env as name -> value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment).get("env", [])}


def source_crds() -> list[Manifest]:
    """The CRDs as the repository's crds/ folder holds them (the one source)."""
    docs: list[Manifest] = []
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        docs += [
            d
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"
        ]
    return docs


def to_yaml_stream(manifests: Iterable[Manifest]) -> str:
    return yaml.safe_dump_all(list(manifests), sort_keys=False)
