"""The console's settings: environment variables prefixed ``TOKENPOOL_CONSOLE_`` (docs/console.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tokenpool.accounts.augment_oauth import ALLOWED_TENANT_HOSTS, AUTHORIZE_URL, LOGIN_TTL_S

JoinMode = Literal["off", "invitation", "open"]


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENPOOL_CONSOLE_", extra="ignore")

    # Comma-separated namespaces whose pool the console shows; the first is the default one.
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    host: str = "0.0.0.0"
    port: int = Field(default=8090, ge=0, le=65535)
    # Path prefix the console is served under (e.g. "/console" behind an Ingress path); empty: "/".
    base_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # Optional kubeconfig path; empty: $KUBECONFIG, in-cluster, ~/.kube/config (like kubectl).
    kubeconfig: str = ""
    # Cookies only over HTTPS (Secure). Browsers also accept them from http://localhost, so only a
    # plain-HTTP deployment on another host needs this off (not recommended).
    cookie_secure: bool = True
    session_idle_seconds: int = Field(default=2 * 3600, ge=60)
    session_max_seconds: int = Field(default=12 * 3600, ge=60)
    # Failed logins (and failed bearer authentications) per client address per window, and in
    # total per window; beyond either, 429 with Retry-After.
    login_failures_per_address: int = Field(default=10, ge=1)
    login_failures_total: int = Field(default=200, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    # Kubernetes identities (TokenReview + SubjectAccessReview + impersonation); off: only PoolUsers.
    kubernetes_login: bool = True
    # How long an access review's answer is reused for the same person and action.
    access_review_cache_seconds: float = Field(default=5.0, ge=0)
    # Audiences a Kubernetes token must carry (empty: the API server's default).
    kubernetes_audiences: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Joining the pool: off, only with an invitation code, or open to anyone (admin approval
    # always); requests per client address and in total per hour.
    join: JoinMode = "off"
    join_per_address_per_hour: int = Field(default=5, ge=1)
    join_total_per_hour: int = Field(default=100, ge=1)
    # The operator's quota settings (TOKENPOOL_OPERATOR_DEFAULT_QUOTA / _MAX_QUOTA): the quota of a
    # PoolUser without spec.tokenQuota, and the cap, for quota statistics and the forms.
    default_quota: int = Field(default=3, ge=0)
    max_quota: int = Field(default=10, ge=0)
    # Adding an Augment account by signing in with it (OAuth with PKCE): the sign-in page, the
    # tenant hosts the console may send a code to (the pasted answer names the tenant; "*.x"
    # matches subdomains of x; plain http only on a loopback host listed here), and how long a
    # started sign-in may take.
    augment_authorize_url: str = Field(default=AUTHORIZE_URL, pattern=r"^https?://")
    augment_tenant_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(ALLOWED_TENANT_HOSTS)
    )
    sign_in_seconds: float = Field(default=LOGIN_TTL_S, gt=0, le=86400)
    # How long to wait for the operator to generate or rotate a personal token.
    token_wait_seconds: float = Field(default=20.0, gt=0)
    # Client addresses from X-Forwarded-For are trusted from these peers (an ingress controller).
    forwarded_allow_ips: str = "127.0.0.1"
    watch_timeout_seconds: int = Field(default=300, ge=1)
    watch_retry_seconds: float = Field(default=1.0, gt=0)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, values: dict[str, object]) -> dict[str, object]:
        for key in ("namespaces", "kubernetes_audiences", "augment_tenant_hosts"):
            raw = values.get(key)
            if isinstance(raw, str):
                values[key] = [item.strip() for item in raw.split(",") if item.strip()]
        return values

    @model_validator(mode="after")
    def _some_namespace(self) -> ConsoleSettings:
        if not self.namespaces:
            raise ValueError("namespaces must name at least one namespace")
        return self

    @property
    def default_namespace(self) -> str:
        return self.namespaces[0]
