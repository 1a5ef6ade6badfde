"""``tokenpool proxy``: logging set-up and uvicorn (uvloop + httptools) around create_app()."""

from __future__ import annotations

import gc
import logging
import socket
import sys
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI

from .app import create_app
from .settings import ProxySettings


class JsonFormatter(logging.Formatter):
    """One JSON object per line; access lines carry their fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if access:
            out.update(access)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def configure_logging(settings: ProxySettings) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(access)s", defaults={"access": ""}
        )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def run() -> None:
    settings = ProxySettings()
    configure_logging(settings)
    serve(create_app(settings), settings)


def serve(app: FastAPI, settings: ProxySettings) -> None:
    """The one way the proxy is served (the benchmark serves a pre-filled app through it too)."""
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
