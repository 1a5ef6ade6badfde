"""``tokenpool operator``: Kopf underneath, configured from :class:`OperatorSettings`."""

from __future__ import annotations

import logging

import kopf

from tokenpool_operator.settings import OperatorSettings
from tokenpool_operator.state import State


def run(settings: OperatorSettings | None = None) -> None:
    settings = settings or OperatorSettings()
    kopf.configure(log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL)
    logging.getLogger().setLevel(settings.log_level)
    # Kopf's own per-event chatter stays out of INFO; our modules log what an admin needs.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    from tokenpool_operator import handlers  # noqa: F401  (registers the Kopf handlers)

    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        memo=kopf.Memo(state=State(), settings=settings),
    )
