"""The few project modules the cluster tier uses, imported in one place (one line to follow when
the developer tooling moves: ``tokenpool.devtools`` becomes ``tokenpool.dev``)."""

from tokenpool.devtools import binaries, kubeconfig
from tokenpool.devtools.controlplane import free_port
from tokenpool.devtools.processes import ManagedProcess, register_cleanup, unregister_cleanup

# The fake Augment upstream, run with ``python -m`` / imported by the HTTPS runner.
FAKE_UPSTREAM_MODULE = "tokenpool.devtools.fake_augment"

__all__ = [
    "FAKE_UPSTREAM_MODULE",
    "ManagedProcess",
    "binaries",
    "free_port",
    "kubeconfig",
    "register_cleanup",
    "unregister_cleanup",
]
