"""Docs that run: every shell block of README.md and docs/*.md is executed here against the test
control plane (with the operator running and what the block assumes already created), or is
marked as run by another test, or as needing what no test has (a real cluster, Docker, a real
upstream). The marker is an HTML comment on the line before the block, e.g.
``<!-- doc-test: run -->`` or ``<!-- doc-test: needs a real cluster -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import Helm
from tests.support.proxy_fixtures import FakeUpstream
from tests.support.tokenpool_objects import Pool
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- doc-test: (?P<marker>[^>]*) -->\n)?```(?:bash|sh|shell)\n(?P<body>.*?)```", re.S)
MARKER_PART = re.compile(
    r"^(run|the test suite itself|a benchmark \(make bench\)|needs .+|runs in (?P<path>\S+))$"
)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    marker: str
    body: str

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start("body")].count("\n")
            out.append(Block(doc, line, (m.group("marker") or "").strip(), m.group("body")))
    return out


def test_every_shell_block_is_run_or_says_why_not() -> None:
    found = blocks()
    assert len(found) >= 20
    for block in found:
        assert block.marker, f"{block.id}: no <!-- doc-test: ... --> marker before the block"
        for part in block.marker.split(";"):
            match = MARKER_PART.match(part.strip())
            assert match, f"{block.id}: unknown marker {part!r}"
            if match.group("path"):
                assert (ROOT / match.group("path")).is_file(), (
                    f"{block.id}: {match.group('path')} does not exist"
                )


def _kubeconfig(source: str, namespace: str, path: Path) -> Path:
    config = yaml.safe_load(Path(source).read_text())
    current = config["current-context"]
    for ctx in config["contexts"]:
        if ctx["name"] == current:
            ctx["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(config))
    return path


def _token(pool: Pool, name: str, endpoint: str, **labels: str) -> None:
    pool.credential(f"{name}-cred", f"cred-{name}-" + "0" * 20)
    pool.token(name, endpoint=endpoint, labels=labels)


def _cli_setup(pool: Pool, fake: FakeUpstream) -> None:
    for name in ("d5-main", "d12-backup", "augment-1"):
        _token(pool, name, fake.tenant(name))
    for name in ("gold-1", "gold-2"):
        _token(pool, name, fake.tenant(name), tier="gold")
    pool.user("bob")


SETUP: dict[str, Callable[[Pool, FakeUpstream], None]] = {
    "cli.md": _cli_setup,
    "operator.md": lambda pool, fake: _token(pool, "augment-1", fake.tenant("augment-1")),
    "usage.md": lambda pool, fake: _token(pool, "d5-team-1", fake.tenant("d5-team-1")),
    "install.md": lambda pool, fake: None,
}
RUN = [b for b in blocks() if b.marker == "run"]


@pytest.mark.parametrize("doc", sorted({b.doc.name for b in RUN}))
def test_documented_commands_work(
    doc: str,
    tmp_path: Path,
    kube_api: Any,
    control_plane: Any,
    namespace: str,
    helm: Helm,
    operator_process: Callable[..., Any],
    fake_upstream: FakeUpstream,
) -> None:
    """Each doc's blocks run in order in a scratch directory (crds/, charts/, examples/ linked),
    with kubectl's current namespace set to a fresh one the operator watches."""
    pool = Pool(kube_api, namespace)
    work = tmp_path / "work"
    work.mkdir()
    for folder in ("crds", "charts", "examples"):
        (work / folder).symlink_to(ROOT / folder)
    kubeconfig = _kubeconfig(control_plane.kubeconfig, namespace, tmp_path / "kubeconfig")
    env = {
        "PATH": f"{Path(sys.executable).parent}:{helm.binary.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECONFIG": str(kubeconfig),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "ACCESS_TOKEN": "doc-test-access-token-" + "0" * 20,  # what a block assumes the reader has
    }
    operator_process(namespace, check_base_seconds=1)
    SETUP[doc](pool, fake_upstream)
    for block in [b for b in RUN if b.doc.name == doc]:
        # A block that names the install namespace gets this test's own instead.
        body = block.body.replace("tokenpool-system", namespace)
        if "kubectl create namespace" in body:
            body = body.replace(f"kubectl create namespace {namespace}", f"kubectl get namespace {namespace}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", body],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, (
            f"{block.id} failed:\n{body}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        print(f"{block.id}: ok")
    if doc == "install.md":  # the plain manifests really were applied
        wait_for(lambda: pool.core.list_namespaced_service_account(namespace).items, timeout=10)
