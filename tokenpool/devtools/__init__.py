"""Developer tooling: the local control plane shared by the test suite and `tokenpool dev`."""

from tokenpool.devtools.controlplane import ControlPlane, ControlPlaneError

__all__ = ["ControlPlane", "ControlPlaneError"]
