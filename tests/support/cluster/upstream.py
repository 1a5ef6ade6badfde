"""The fake Augment upstream, on the host, over HTTPS, at an address the cluster's pods reach.

The address: on the local cluster the node's own (pods reach the host through the CNI bridge's
gateway); on an external cluster (kind) the host's address on the network that leads to the node
(the kernel's source address towards it). HTTPS because the UpstreamToken CRD allows plain http
only for localhost; the proxy pods trust the fake's CA through the chart's extraVolumes,
extraVolumeMounts and SSL_CERT_FILE (what an admin behind a TLS-intercepting egress proxy does).
"""

from __future__ import annotations

import socket
import ssl
import sys
from pathlib import Path

import httpx

from tests.support.cluster.pki import upstream_tls
from tests.support.cluster.project import FAKE_UPSTREAM_MODULE, ManagedProcess, register_cleanup
from tests.support.proxy_fixtures import FakeUpstream
from tests.support.waiting import wait_for

SERVE = """
import ssl, sys
from aiohttp import web
from {module} import make_app
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
web.run_app(make_app(), host=sys.argv[1], port=int(sys.argv[2]), ssl_context=ctx, print=None)
"""


def address_towards(node_ip: str) -> str:
    """This host's source address for packets to ``node_ip`` (no packet is sent: UDP connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((node_ip, 9))
        return str(sock.getsockname()[0])


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ReachableFakeUpstream(FakeUpstream):
    """:class:`FakeUpstream` (same control API) on ``host`` over HTTPS; ``ca_pem`` is its CA."""

    def __init__(self, log_dir: Path, host: str) -> None:  # binds ``host``, not loopback
        ca, serving = upstream_tls(log_dir / "tls", host)
        self.ca_pem = ca.cert_pem().decode()
        self.port = _free_port(host)
        self.url = f"https://{host}:{self.port}/"
        code = SERVE.format(module=FAKE_UPSTREAM_MODULE)
        argv = [sys.executable, "-c", code, host, str(self.port), str(serving.cert), str(serving.key)]
        self.process = ManagedProcess("fake-augment", argv, log_dir / "fake-augment.log")
        register_cleanup(self.process.stop)
        self.http = httpx.Client(
            base_url=self.url, timeout=5.0, verify=ssl.create_default_context(cafile=ca.cert)
        )
        wait_for(self._up, timeout=30, what="fake upstream listening")
