"""Operator settings, from ``TOKENPOOL_OPERATOR_*`` environment variables (Helm values → env)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENPOOL_OPERATOR_", extra="ignore")

    # Comma-separated namespaces to watch; empty = the whole cluster.
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_quota: int = Field(default=3, ge=0)
    max_quota: int = Field(default=10, ge=0)
    log_format: Literal["json", "text"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    liveness_host: str = "0.0.0.0"
    # Safety net: every object is re-reconciled this often even if no event arrived.
    resync_seconds: float = Field(default=300.0, gt=0)
    workers: int = Field(default=4, ge=1, le=64)
    # Health checks of Unhealthy tokens: first after CHECK_BASE_SECONDS, doubling after each failed
    # check up to CHECK_MAX_SECONDS (±20% jitter); at most CHECK_CONCURRENCY probes at once.
    check_base_seconds: float = Field(default=60.0, gt=0)
    check_max_seconds: float = Field(default=3600.0, gt=0)
    check_concurrency: int = Field(default=4, ge=1, le=64)
    check_timeout_seconds: float = Field(default=15.0, gt=0)
    # Account standing of Augment tokens (plan, expiry, credits): read every STANDING_INTERVAL_SECONDS
    # (a never-read token within STANDING_FIRST_DELAY_SECONDS, spread at random), at most
    # STANDING_CONCURRENCY at once. RENEWAL_MARGIN_*: how close to its end or to running out an
    # account gets the RenewalDue condition and a Warning Event.
    standing_interval_seconds: float = Field(default=21600.0, gt=0)
    standing_first_delay_seconds: float = Field(default=60.0, ge=0)
    standing_concurrency: int = Field(default=2, ge=1, le=64)
    renewal_margin_days: float = Field(default=7.0, ge=0)
    renewal_margin_credits: int = Field(default=100, ge=0)
    # User-Agent of the probes (Augment answers IDE extensions).
    check_user_agent: str = "Augment.vscode-augment/0.482.1 (linux; x64; 6.8.0) vscode/1.95.3"

    @model_validator(mode="before")
    @classmethod
    def _split_namespaces(cls, values: dict[str, object]) -> dict[str, object]:
        raw = values.get("namespaces")
        if isinstance(raw, str):
            values["namespaces"] = [ns.strip() for ns in raw.split(",") if ns.strip()]
        return values

    @model_validator(mode="after")
    def _default_within_max(self) -> OperatorSettings:
        if self.default_quota > self.max_quota:
            raise ValueError("default_quota must not exceed max_quota")
        return self
