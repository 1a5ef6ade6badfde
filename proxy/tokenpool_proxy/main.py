"""``tokenpool proxy``: logging set-up and uvicorn (uvloop + httptools) around create_app()."""

from __future__ import annotations

import gc
import logging
import resource
import socket

import uvicorn
from fastapi import FastAPI

from tokenpool import log_format

from .app import create_app
from .settings import ProxySettings


def run() -> None:
    settings = ProxySettings()
    log_format.configure(settings.log_format, settings.log_level)
    serve(create_app(settings), settings)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one; the new soft limit.

    Every open stream holds two sockets (the client's and the upstream's), and many systems
    start processes with a soft limit of 1024: the proxy would refuse connections at about 500
    open streams while the hard limit allows far more (Go programs raise it the same way).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            logging.getLogger(__name__).warning("could not raise the open-files limit above %d", soft)
    return soft


def serve(app: FastAPI, settings: ProxySettings) -> None:
    """The one way the proxy is served (the benchmark serves a pre-filled app through it too)."""
    raise_open_files_limit()
    # Everything built so far (modules, the app) lives as long as the process: keep it out of the
    # garbage collector's scans, which otherwise walk it again on every full collection.
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    # One server, two listening sockets: the public port and the operations port. The edge
    # tells them apart by the connection's local port (edge.py).
    sockets = [_listen(settings.host, settings.port)]
    if settings.ops_port:
        sockets.append(_listen(settings.host, settings.ops_port))
    uvicorn.Server(config).run(sockets=sockets)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
