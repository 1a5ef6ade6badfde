"""The objects one proxy process shares across requests (built in app.py, on ``app.state.svc``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .balancer import Balancer
from .index import RouteIndex
from .notice_check import NoticeChecker
from .request_metrics import Metrics
from .settings import ProxySettings
from .token_health import HealthBook
from .usage import UsageSink

if TYPE_CHECKING:
    from .providers.base import ChatProvider


class Watch(Protocol):
    """A watch loop readiness depends on (the route watches, the status watch)."""

    def stale_for(self, now: float | None = None) -> float: ...


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
    notices: NoticeChecker = field(default_factory=NoticeChecker)
    # The route watches and the status watch, which feeds the routes' owners (none in tests that
    # feed the index by hand): readiness reads how long each has been failing.
    watchers: list[Watch] = field(default_factory=list)

    def routes_ready(self) -> bool:
        """First full sync done, and no watch failing for longer than the stale threshold."""
        limit = self.settings.routes_stale_seconds
        return self.index.ready and all(w.stale_for() <= limit for w in self.watchers)
