"""The few project modules the cluster tier uses, imported in one place (one file to follow
when the developer tooling in ``tokenpool.dev`` moves)."""

from tokenpool.dev import binaries, kubeconfig
from tokenpool.dev.controlplane import free_port
from tokenpool.dev.processes import ManagedProcess, register_cleanup, unregister_cleanup

# The fake Augment upstream, imported by the HTTPS runner (tests/support/cluster/upstream.py).
FAKE_UPSTREAM_MODULE = "tokenpool.dev.fake_upstream"

__all__ = [
    "FAKE_UPSTREAM_MODULE",
    "ManagedProcess",
    "binaries",
    "free_port",
    "kubeconfig",
    "register_cleanup",
    "unregister_cleanup",
]
