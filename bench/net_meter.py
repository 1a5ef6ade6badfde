"""Bytes a process exchanges with the API server, counted on the wire by a TCP relay in front of it.

Each proxy replica gets its own kubeconfig pointing at its own relay port; the relay forwards to
the real API server untouched (TLS end to end: the proxy still authenticates with its own
credentials and verifies the server's certificate, whose 127.0.0.1 address the relay shares), so
what it counts is exactly what that replica sent and received, TLS framing included. Requests
are not visible inside TLS: their counts come from the API server's own metrics
(``apiserver_request_total``), see :func:`apiserver_requests`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

from tokenpool.dev.controlplane import free_port


@dataclass
class Counts:
    sent: int = 0  # client -> API server
    received: int = 0  # API server -> client
    connections: int = 0


class Relay:
    """One listening port forwarding to the API server; counts bytes both ways."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: tuple[str, int]) -> None:
        self.port = free_port()
        self.counts = Counts()
        self._target = target
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:  # the API server is gone (the benchmark is ending)
            client_w.close()
            return
        await asyncio.gather(
            self._pump(client_r, server_w, "sent"), self._pump(server_r, client_w, "received")
        )

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, field: str) -> None:
        try:
            while data := await src.read(1 << 16):
                setattr(self.counts, field, getattr(self.counts, field) + len(data))
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()

    def snapshot(self) -> Counts:
        return Counts(self.counts.sent, self.counts.received, self.counts.connections)


class Meter:
    """Relays on one background event loop (the benchmark's own thread stays free)."""

    def __init__(self, server: str) -> None:
        url = urlparse(server)
        self._target = (url.hostname or "127.0.0.1", url.port or 443)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="net-meter", daemon=True).start()

    def relay(self) -> Relay:
        return Relay(self._loop, self._target)

    def kubeconfig(self, admin: str, relay: Relay, into: Path) -> str:
        """A copy of the ``admin`` kubeconfig whose server is ``relay``."""
        doc = yaml.safe_load(Path(admin).read_text())
        for cluster in doc["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
        into.write_text(yaml.safe_dump(doc))
        into.chmod(0o600)
        return str(into)

    def stop(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_requests(server: str, context: ssl.SSLContext, resources: set[str]) -> dict[str, float]:
    """``verb resource`` -> requests served so far, from the API server's /metrics (watches are
    counted when they end). Only ``resources`` (the benchmark's own scrape of /metrics is not one)."""
    with urllib.request.urlopen(server + "/metrics", context=context, timeout=30) as resp:  # noqa: S310
        text = resp.read().decode()
    out: dict[str, float] = {}
    for labels, value in _SAMPLE.findall(text):
        fields = dict(_LABEL.findall(labels))
        if fields.get("resource") in resources:
            key = f"{fields.get('verb')} {fields['resource']}" + (
                "/status" if fields.get("subresource") else ""
            )
            out[key] = out.get(key, 0.0) + float(value)
    return out


def admin_context(admin_kubeconfig: str) -> ssl.SSLContext:
    """An SSL context with the admin's client certificate, for reading the API server's /metrics."""
    import base64
    import tempfile

    doc = yaml.safe_load(Path(admin_kubeconfig).read_text())
    user = doc["users"][0]["user"]
    ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    context = ssl.create_default_context(cadata=ca.decode())
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        context.load_cert_chain(str(cert), str(key))
    return context
