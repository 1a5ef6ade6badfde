"""``tokenpool console``: logging set-up and uvicorn around create_app()."""

from __future__ import annotations

import uvicorn

from tokenpool import log_format

from .settings import ConsoleSettings
from .webapp import create_app


def run() -> None:
    settings = ConsoleSettings()
    log_format.configure(settings.log_format, settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=5,
    )
