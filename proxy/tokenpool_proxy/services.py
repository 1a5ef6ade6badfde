"""The objects one proxy process shares across requests (built in app.py, on ``app.state.svc``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .balancer import Balancer
from .index import RouteIndex
from .request_metrics import Metrics
from .settings import ProxySettings
from .token_health import HealthBook
from .usage import UsageSink

if TYPE_CHECKING:
    from .providers.base import ChatProvider


@dataclass
class Services:
    settings: ProxySettings
    index: RouteIndex
    health: HealthBook
    balancer: Balancer
    usage: UsageSink
    metrics: Metrics
    # Provider name (contract.Provider) → provider; filled in the lifespan with the shared client.
    providers: dict[str, ChatProvider]
