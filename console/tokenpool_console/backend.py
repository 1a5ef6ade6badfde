"""Everything a request handler needs, built once per process (the app's lifespan holds it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenpool.kube.client import KubeClient

from .access import Access
from .callers import Authenticator
from .login_sessions import SessionStore
from .mirror import PoolMirror
from .pool_stats import StatsCache
from .settings import ConsoleSettings
from .sign_in_store import SignIns
from .throttle import Throttle


@dataclass
class Backend:
    settings: ConsoleSettings
    kube: KubeClient
    mirror: PoolMirror
    access: Access = field(init=False)
    auth: Authenticator = field(init=False)
    sessions: SessionStore = field(init=False)
    login_throttle: Throttle = field(init=False)
    join_throttle: Throttle = field(init=False)
    stats: StatsCache = field(init=False)
    sign_ins: SignIns = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.access = Access(self.kube, s.namespaces, s.access_review_cache_seconds)
        self.auth = Authenticator(self.mirror, self.kube, s.kubernetes_login, s.kubernetes_audiences)
        self.sessions = SessionStore(s.session_idle_seconds, s.session_max_seconds, s.cookie_secure)
        self.login_throttle = Throttle(
            s.login_failures_per_address, s.login_failures_total, s.login_window_seconds
        )
        self.join_throttle = Throttle(s.join_per_address_per_hour, s.join_total_per_hour, 3600)
        self.stats = StatsCache(s.default_quota, s.max_quota)
        self.sign_ins = SignIns(s.sign_in_seconds, s.augment_authorize_url)
