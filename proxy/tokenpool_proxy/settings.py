"""The proxy's settings: environment variables prefixed ``TOKENPOOL_PROXY_`` (docs/proxy.md).

One class, so the Helm chart, the tests and the docs have a single list to agree with.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenpool.contract.compiled import Provider

Mode = Literal["CHAT", "AGENT"]


class ModelSpec(BaseModel):
    """One entry of ``GET /v1/models`` and how it maps onto an upstream provider.

    ``upstream_model`` is the provider's model id (None: Augment's default model; for OpenAI
    and Anthropic upstreams the public id itself). ``mode`` is Augment's chat mode; when omitted
    a request that offers tools or an id ending in ``-agent`` selects AGENT, anything else CHAT.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    id: str
    provider: Provider = "Augment"
    upstream_model: str | None = None
    mode: Mode | None = None

    def augment_mode(self, tools: bool = False) -> Mode:
        if self.mode is not None:
            return self.mode
        return "AGENT" if tools or self.id.endswith("-agent") else "CHAT"


DEFAULT_MODELS = (
    ModelSpec(id="augment-chat"),
    ModelSpec(id="augment-agent"),
)


class ProxySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENPOOL_PROXY_", extra="ignore")

    namespace: str = "default"
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # /metrics, /healthz, /readyz and /openapi.json are served on this port only, never on the
    # public one (0: on the public port too, for a proxy without a separate operations port).
    ops_port: int = Field(default=9090, ge=0, le=65535)
    # JSON list of ModelSpec objects, e.g. '[{"id":"gpt-4o-mini","provider":"OpenAI"}]': the
    # models of the OpenAI API (Augment or OpenAI), and of the Anthropic API (Augment or Anthropic).
    models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    anthropic_models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    upstream_user_agent: str = "Augment.vscode-augment/0.482.1 (linux; x64; 6.8.0) vscode/1.95.3"
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # Longest silence tolerated between two bytes of an upstream answer (idle gap).
    read_timeout_seconds: float = Field(default=120.0, gt=0)
    # Overall deadline of one upstream call, its whole answer included.
    upstream_deadline_seconds: float = Field(default=900.0, gt=0)
    # A non-streamed answer is gathered whole before it is sent: at most this many characters.
    max_answer_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # After a probe found a token fine despite a notice, notices on it are answers for this long.
    notice_check_ttl_seconds: float = Field(default=60.0, ge=0)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # How long a request waits for a free upstream slot before it is answered 429.
    slot_wait_seconds: float = Field(default=2.0, ge=0)
    # Upstream attempts per client request (the first one included).
    max_attempts: int = Field(default=3, ge=1)
    # Cool-down after a transient failure: base * 2**(failures-1), capped.
    cooldown_base_seconds: float = Field(default=5.0, ge=0)
    cooldown_max_seconds: float = Field(default=600.0, ge=0)
    # "Request blocked" answers: public proxies rest the account this long.
    blocked_cooldown_seconds: float = Field(default=600.0, ge=0)
    # Window of the "least used" count the balancer and /api/tokens order by.
    usage_window_seconds: float = Field(default=3600.0, gt=0)
    # Usage/health write-back to the CRs' status (docs/usage.md): at most one write per changed
    # object per interval, plus a last one on graceful shutdown.
    usage_flush_interval_seconds: float = Field(default=10.0, gt=0)
    # Shifts the clock of usage days/minutes and limits (tests cross a UTC day without waiting).
    usage_clock_offset_seconds: float = 0.0
    # Per-user Prometheus series (one per PoolUser and outcome); off: bounded by outcomes only.
    metrics_per_user: bool = False
    # Watch: server-side timeout of one watch call, and the wait before reconnecting.
    watch_timeout_seconds: int = Field(default=300, ge=1)
    watch_retry_seconds: float = Field(default=1.0, gt=0)
    # Readiness turns false when a route watch has been failing this long (the index is stale),
    # and true again after the relist.
    routes_stale_seconds: float = Field(default=30.0, gt=0)
    # The status watch (usage and health of PoolUsers/UpstreamTokens): server-side timeout of one
    # call. Each call starts by re-sending every object (compressed), hence longer than the above.
    status_watch_timeout_seconds: int = Field(default=1800, ge=1)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    access_log: bool = True
    # Optional kubeconfig path; empty: in-cluster config, then $KUBECONFIG / ~/.kube/config.
    kubeconfig: str = ""

    @model_validator(mode="after")
    def _providers_speak_the_api(self) -> ProxySettings:
        """A pass-through provider serves only the API of its own dialect (no conversion)."""
        for api, models, foreign in (
            ("models", self.models, "Anthropic"),
            ("anthropic_models", self.anthropic_models, "OpenAI"),
        ):
            for spec in models:
                if spec.provider == foreign:
                    raise ValueError(
                        f"{api}: model {spec.id!r} of provider {foreign} cannot be served on this API"
                    )
        return self

    def model(self, model_id: str) -> ModelSpec | None:
        """A model of the OpenAI API."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        return None

    def anthropic_model(self, model_id: str) -> ModelSpec | None:
        """A model of the Anthropic API."""
        for spec in self.anthropic_models:
            if spec.id == model_id:
                return spec
        return None
